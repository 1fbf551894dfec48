"""Self-service for token holders: their own balance, usage and webhook.

``/v1/me`` is the gateway's own; the two ``/v1/dashboard/billing`` routes answer the balance
checks that clients written for one-api/new-api gateways make.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from gateway.ledger import reports
from gateway.ledger.pricing import MICROS_PER_USD, micros_to_usd
from gateway.tokens.auth import Context, GatewayToken
from gateway.tokens.models import Token
from gateway.tokens.schemas import TokenUpdate, WebhookUpdate
from gateway.tokens.service import TokenService

router = APIRouter(prefix="/v1", tags=["self-service"])


def _month_start() -> float:
    today = datetime.now(UTC)
    return today.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


async def _usage(ctx: Context, token: Token, since: float | None) -> reports.UsageRow:
    async with ctx.sessions() as session:
        result = await reports.usage(session, group_by="token", since=since, until=None,
                                     token_id=token.id)
    return result.total()


async def _fresh(ctx: Context, token: Token) -> Token:
    """Balances change with every job: read them now, not from the auth cache."""
    return await TokenService(ctx).get(token.id)


async def _me(ctx: Context, token: Token, webhook_secret: str | None = None) -> dict[str, Any]:
    month = await _usage(ctx, token, _month_start())
    usage = month.public()
    usage.pop("key")
    usage.pop("name")
    return {
        "object": "gateway.token", "id": token.id, "name": token.name, "group": token.group,
        "billing_mode": token.billing_mode, "balance_usd": micros_to_usd(token.balance_micros),
        "held_usd": micros_to_usd(token.held_micros), "models": list(token.models or []),
        "expires_at": int(token.expires_at) if token.expires_at else None,
        "usage_this_month": {"since": int(_month_start()), **usage},
        "webhook_url": token.webhook_url,
        # Shown in the one response that made it.
        **({"webhook_secret": webhook_secret} if webhook_secret else {}),
    }


@router.get("/me")
async def me(ctx: Context, token: GatewayToken) -> dict[str, Any]:
    return await _me(ctx, await _fresh(ctx, token))


@router.patch("/me")
async def update_me(change: WebhookUpdate, ctx: Context, token: GatewayToken) -> dict[str, Any]:
    """Set or remove the token's webhook_url; a first URL answers with its secret."""
    updated, webhook_secret = await TokenService(ctx).update(
        token.id, TokenUpdate(**change.model_dump(exclude_unset=True)))
    return await _me(ctx, updated, webhook_secret)


@router.post("/me/webhook_secret")
async def rotate_webhook_secret(ctx: Context, token: GatewayToken) -> dict[str, Any]:
    """A new webhook secret, shown once; the old one keeps signing for the grace period."""
    updated, webhook_secret = await TokenService(ctx).rotate_webhook_secret(token.id)
    return await _me(ctx, updated, webhook_secret)


@router.get("/dashboard/billing/subscription")
async def billing_subscription(ctx: Context, token: GatewayToken) -> dict[str, Any]:
    token = await _fresh(ctx, token)
    charged = (await _usage(ctx, token, None)).charged_micros
    # Clients show "remaining = hard_limit_usd - total_usage/100"; that must equal what the
    # token can still spend plus what is held for running jobs.
    limit = (token.balance_micros + token.held_micros + charged) / MICROS_PER_USD
    return {
        "object": "billing_subscription", "has_payment_method": True,
        "soft_limit_usd": limit, "hard_limit_usd": limit, "system_hard_limit_usd": limit,
        "access_until": int(token.expires_at) if token.expires_at else 0,
    }


@router.get("/dashboard/billing/usage")
async def billing_usage(ctx: Context, token: GatewayToken) -> dict[str, Any]:
    charged = (await _usage(ctx, token, None)).charged_micros
    # OpenAI's legacy billing API reports usage in US cents.
    return {"object": "list", "total_usage": charged / (MICROS_PER_USD / 100)}
