"""What a token may ask for by name: the models and chat aliases of ``GET /v1/models``.

A name is offered to a token when its group and allow-list admit the model, an upstream
serving the group has it, and it has a price in the token's billing mode (for an alias, at
the alias's size and length): exactly what a create would accept, so a chat client's picker
never shows a name that is then refused.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from gateway.config import Settings
from gateway.errors import InvalidRequest, NotFound
from gateway.ledger.pricing import price_micros
from gateway.tokens.models import Token
from gateway.upstreams.pool import UpstreamPool

OWNER = "video-gateway"


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    # OpenAI's creation time; a name here has none, and 0 keeps it the same on every replica.
    created: int = 0
    owned_by: str = OWNER


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _priced(settings: Settings, token: Token, model: str, size: str | None,
            seconds: int | None) -> bool:
    if size is None:  # a model by itself: any size it is priced at will do
        table = (settings.pricing.per_call if token.billing_mode == "per_call"
                 else settings.pricing.per_second)
        return model in table
    try:
        price_micros(settings, group=token.group, billing_mode=token.billing_mode,
                     model=model, size=size, seconds=seconds or 0)
    except InvalidRequest:
        return False
    return True


def offered_names(settings: Settings, pool: UpstreamPool, token: Token) -> list[str]:
    """The models, then the aliases, this token may use, each list sorted."""
    group = settings.groups.get(token.group)
    if group is None or token.billing_mode not in group.billing_modes:
        return []
    allowed = [names for names in (token.models or None, group.models) if names is not None]
    models = {model for model in settings.known_models
              if all(model in names for names in allowed) and pool.serves(token.group, model)}
    aliases = [name for name, alias in settings.chat.aliases.items() if alias.model in models
               and _priced(settings, token, alias.model, alias.size, alias.seconds)]
    usable = [model for model in models if _priced(settings, token, model, None, None)]
    return sorted(usable) + sorted(aliases)


def model_list(settings: Settings, pool: UpstreamPool, token: Token) -> ModelList:
    return ModelList(data=[ModelCard(id=name) for name in offered_names(settings, pool, token)])


def model_card(settings: Settings, pool: UpstreamPool, token: Token, name: str) -> ModelCard:
    if name not in offered_names(settings, pool, token):
        raise model_not_found(name)
    return ModelCard(id=name)


def model_not_found(name: str) -> NotFound:
    return NotFound(f"The model '{name[:80]}' does not exist or you do not have access to it.",
                    param="model", code="model_not_found")
