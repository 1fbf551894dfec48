from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gateway.ledger.pricing import MAX_USD, PLAIN_DECIMAL, micros_to_usd, parse_usd
from gateway.tokens.models import Token

BillingMode = Literal["per_second", "per_call"]
INT32_MAX = 2**31 - 1
# USD as the API reads it: a plain decimal string (or a JSON number written as one), at most
# MAX_USD; the admin API and the command line read amounts only through this.
Usd = Annotated[
    Decimal,
    BeforeValidator(parse_usd),
    WithJsonSchema({
        "anyOf": [{"type": "string", "pattern": f"^{PLAIN_DECIMAL}$"},
                  {"type": "number", "minimum": 0, "maximum": float(MAX_USD)}],
        "description": f"USD, a plain decimal with at most 6 decimals; at most {MAX_USD}.",
    }),
]


def _epoch(value: object) -> object:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and not value.replace(".", "", 1).isdigit():
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return value


def storable(value: str) -> str:
    """Text every database can store: UTF-8 encodable and without NUL."""
    value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _storable_text(self) -> _Input:
        for value in self.__dict__.values():
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str):
                    storable(text)
        return self


class TokenCreate(_Input):
    name: str = Field(min_length=1, max_length=200)
    group: str = Field(min_length=1)
    billing_mode: BillingMode = "per_second"
    balance_usd: Usd = Decimal(0)
    models: list[str] = Field(default_factory=list)
    expires_at: float | None = None
    rpm: int | None = Field(None, ge=1, le=INT32_MAX)
    max_concurrent_jobs: int | None = Field(None, ge=1, le=INT32_MAX)
    webhook_url: str | None = None

    _expires = field_validator("expires_at", mode="before")(_epoch)


class TokenUpdate(_Input):
    name: str | None = Field(None, min_length=1, max_length=200)
    group: str | None = None
    billing_mode: BillingMode | None = None
    models: list[str] | None = None
    expires_at: float | None = None
    disabled: bool | None = None
    rpm: int | None = Field(None, ge=1, le=INT32_MAX)
    max_concurrent_jobs: int | None = Field(None, ge=1, le=INT32_MAX)
    # null removes the webhook; the secret stays, for a URL set again later.
    webhook_url: str | None = None

    _expires = field_validator("expires_at", mode="before")(_epoch)


class WebhookUpdate(_Input):
    """What a token's holder may change of it (``PATCH /v1/me``)."""

    webhook_url: str | None = None


class TopUp(_Input):
    amount_usd: Annotated[Usd, Field(gt=0)]
    note: str | None = Field(None, max_length=500)


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


class TokenOut(BaseModel):
    id: str
    object: Literal["gateway.token"] = "gateway.token"
    name: str
    group: str
    billing_mode: str
    key_hint: str
    balance_usd: str
    held_usd: str
    models: list[str]
    expires_at: int | None
    disabled: bool
    revoked: bool
    rpm: int | None
    max_concurrent_jobs: int | None
    active_jobs: int
    created_at: int
    last_used_at: int | None
    webhook_url: str | None
    webhook_secret: str | None = Field(
        None, exclude_if=lambda secret: secret is None,
        description="Only in the response that made the secret (a first webhook_url, or a "
                    "rotation): the gateway never shows it again.")

    @classmethod
    def of(cls, token: Token, *, webhook_secret: str | None = None) -> TokenOut:
        return cls(
            id=token.id, name=token.name, group=token.group, billing_mode=token.billing_mode,
            key_hint=token.key_hint, balance_usd=micros_to_usd(token.balance_micros),
            held_usd=micros_to_usd(token.held_micros), models=list(token.models or []),
            expires_at=_int_or_none(token.expires_at), disabled=token.disabled,
            revoked=token.revoked_at is not None, rpm=token.rpm,
            max_concurrent_jobs=token.max_concurrent_jobs, active_jobs=token.active_jobs,
            created_at=int(token.created_at), last_used_at=_int_or_none(token.last_used_at),
            webhook_url=token.webhook_url, webhook_secret=webhook_secret,
        )


class TokenCreated(TokenOut):
    token: str


class TokenList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TokenOut]
