"""Issuing, changing, revoking and topping up gateway tokens."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core import Core
from gateway.db import now
from gateway.errors import InvalidRequest, NotFound
from gateway.ledger import service as ledger
from gateway.ledger.models import LedgerEntry
from gateway.ledger.pricing import usd_to_micros
from gateway.ledger.repository import LedgerRepository
from gateway.tokens.crypto import generate_token, hash_token, is_id, new_id, token_hint
from gateway.tokens.models import Token
from gateway.tokens.repository import TokenRepository
from gateway.tokens.schemas import TokenCreate, TokenUpdate, TopUp
from gateway.webhooks.safety import check_url
from gateway.webhooks.signing import new_secret


def _known_shape(token_id: str) -> None:
    """Ids we never minted are unknown without asking the database (which may refuse NUL)."""
    if not is_id(token_id, "tok", 12):
        raise NotFound(f"No token with id {token_id[:80]!r}.", param="token_id")


class TokenService:
    def __init__(self, ctx: Core) -> None:
        self.ctx = ctx
        self.settings = ctx.settings

    def _check_group(self, group: str | None) -> None:
        if group is not None and group not in self.settings.groups:
            raise InvalidRequest(
                f"Unknown group '{group}'; configured groups: {', '.join(self.settings.groups)}.",
                param="group",
            )

    def _check_billing(self, group: str, billing_mode: str, *, param: str) -> None:
        """A token its group cannot bill would be refused every create: refuse it here."""
        config = self.settings.groups.get(group)
        if config is None:
            raise InvalidRequest(f"The token's group '{group}' is no longer configured; "
                                 "move the token to a configured group.", param="group")
        if billing_mode not in config.billing_modes:
            raise InvalidRequest(
                f"Group '{group}' does not allow {billing_mode} billing; it allows "
                f"{', '.join(config.billing_modes)}.", param=param)

    def _check_change(self, token: Token, values: dict[str, object]) -> None:
        """The group and billing mode a change leaves the token with must go together."""
        if "group" in values or "billing_mode" in values:
            self._check_billing(str(values.get("group", token.group)),
                                str(values.get("billing_mode", token.billing_mode)),
                                param="billing_mode" if "billing_mode" in values else "group")

    def _check_models(self, models: list[str] | None) -> None:
        unknown = sorted(set(models or []) - self.settings.known_models)
        if unknown:
            raise InvalidRequest(f"Unknown models: {', '.join(unknown)}.", param="models")

    async def _check_webhook_url(self, url: str | None) -> None:
        """Refuse a URL the gateway would not send to (its form, where it resolves now)."""
        if url is not None:
            await check_url(url, self.settings.webhooks)

    async def create(self, spec: TokenCreate) -> tuple[Token, str]:
        """A new token and its plaintext; a webhook_url gives it a secret too (new, so the
        caller shows it once)."""
        self._check_group(spec.group)
        self._check_billing(spec.group, spec.billing_mode, param="billing_mode")
        self._check_models(spec.models)
        await self._check_webhook_url(spec.webhook_url)
        plaintext = generate_token()
        at = now()
        token = Token(
            id=new_id("tok", 12), name=spec.name, group=spec.group,
            billing_mode=spec.billing_mode, key_hash=hash_token(plaintext, self.ctx.hash_key),
            key_hint=token_hint(plaintext), balance_micros=0, held_micros=0, active_jobs=0,
            models=spec.models, expires_at=spec.expires_at, disabled=False, rpm=spec.rpm,
            max_concurrent_jobs=spec.max_concurrent_jobs, created_at=at,
            webhook_url=spec.webhook_url, webhook_secret=new_secret() if spec.webhook_url else None,
        )
        async with self.ctx.sessions() as session, session.begin():
            TokenRepository(session).add(token)
            await session.flush()
            amount = usd_to_micros(spec.balance_usd)
            if amount:
                await ledger.topup(session, token.id, amount, "initial balance",
                                   param="balance_usd")
        return await self.get(token.id), plaintext

    async def get(self, token_id: str) -> Token:
        _known_shape(token_id)
        async with self.ctx.sessions() as session:
            token = await TokenRepository(session).get(token_id)
        if token is None:
            raise NotFound(f"No token with id '{token_id}'.", param="token_id")
        return token

    async def _changed(self, token_id: str) -> Token:
        """Re-read a token after a change and forget this process's cached copy of it."""
        token = await self.get(token_id)
        self.ctx.tokens.drop(token.key_hash)
        return token

    async def list(self) -> Sequence[Token]:
        async with self.ctx.sessions() as session:
            return await TokenRepository(session).list()

    async def update(self, token_id: str, change: TokenUpdate) -> tuple[Token, str | None]:
        """The changed token, and its webhook secret if this change made one (a first URL)."""
        _known_shape(token_id)
        values = change.model_dump(exclude_unset=True)
        for name in ("name", "group", "billing_mode", "disabled", "models"):
            if name in values and values[name] is None:
                raise InvalidRequest(f"'{name}' cannot be null.", param=name)
        self._check_group(values.get("group"))
        self._check_models(values.get("models"))
        await self._check_webhook_url(values.get("webhook_url"))
        candidate = new_secret()
        async with self.ctx.sessions() as session, session.begin():
            repo = TokenRepository(session)
            if values.get("webhook_url"):
                await repo.give_webhook_secret(token_id, candidate)
            token = await repo.get(token_id)
            if token is None:
                raise NotFound(f"No token with id '{token_id}'.", param="token_id")
            self._check_change(token, values)
            for name, value in values.items():
                setattr(token, name, value)
        token = await self._changed(token_id)
        return token, candidate if token.webhook_secret == candidate else None

    async def rotate_webhook_secret(self, token_id: str) -> tuple[Token, str]:
        """A new webhook secret; the one it replaces keeps signing for the grace period."""
        _known_shape(token_id)
        secret = new_secret()
        async with self.ctx.sessions() as session, session.begin():
            if not await TokenRepository(session).rotate_webhook_secret(token_id, secret, now()):
                raise NotFound(f"No token with id '{token_id}'.", param="token_id")
        return await self._changed(token_id), secret

    async def revoke(self, token_id: str) -> Token:
        _known_shape(token_id)
        async with self.ctx.sessions() as session, session.begin():
            token = await TokenRepository(session).get(token_id)
            if token is None:
                raise NotFound(f"No token with id '{token_id}'.", param="token_id")
            token.revoked_at = token.revoked_at or now()
        return await self._changed(token_id)

    async def topup(self, token_id: str, spec: TopUp) -> Token:
        _known_shape(token_id)
        async with self.ctx.sessions() as session, session.begin():
            if not await ledger.topup(session, token_id, usd_to_micros(spec.amount_usd),
                                      spec.note, param="amount_usd"):
                raise NotFound(f"No token with id '{token_id}'.", param="token_id")
        return await self._changed(token_id)

    async def ledger(self, token_id: str, *, after: int | None,
                     limit: int) -> Sequence[LedgerEntry]:
        await self.get(token_id)
        async with self.ctx.sessions() as session:
            return await LedgerRepository(session).entries(token_id, after=after, limit=limit)
