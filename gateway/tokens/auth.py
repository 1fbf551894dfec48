"""Who is calling: the gateway-token and admin-token dependencies."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.cache import TTLCache
from gateway.core import Core
from gateway.db import now
from gateway.errors import Unauthorized
from gateway.tokens.crypto import TOKEN_PREFIX, constant_time_equals, hash_token
from gateway.tokens.models import Token
from gateway.tokens.repository import TokenRepository

# last_used_at is advisory: write it at most this often per token, not on every poll.
TOUCH_EVERY_S = 60.0


class TokenChecks(Protocol):
    """What checking a gateway token reads: a ``Core``, or anything serving that holds one's."""

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...
    @property
    def hash_key(self) -> bytes: ...
    @property
    def tokens(self) -> TTLCache[Token]: ...


async def get_context(request: Request) -> Core:
    return request.app.state.ctx  # type: ignore[no-any-return]


# The database's resources, all that token checks and the operator's routes need; the video
# routes take the whole serving context (``gateway.videos.deps.Served``).
Context = Annotated[Core, Depends(get_context)]


def _bearer(header: str) -> str:
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthorized("Missing bearer token. Send 'Authorization: Bearer <token>'.")
    return credential.strip()


def _usable(token: Token | None, at: float) -> bool:
    return (
        token is not None
        and token.revoked_at is None
        and not token.disabled
        and (token.expires_at is None or token.expires_at > at)
    )


async def gateway_token(request: Request, ctx: Context) -> Token:
    return await check_token(request.headers.get("authorization", ""), ctx)


async def check_token(authorization: str, ctx: TokenChecks) -> Token:
    """The token an ``Authorization`` header carries, if it is a usable one (for the routes
    that check it themselves: one also reached by signed links, the poll fast path)."""
    credential = _bearer(authorization)
    if not credential.startswith(TOKEN_PREFIX):
        raise Unauthorized("Invalid token.")
    at = now()
    key_hash = hash_token(credential, ctx.hash_key)
    token = await ctx.tokens.get_or_load(key_hash, lambda: _load(ctx, key_hash, at))
    if not _usable(token, at):  # expiry passes while cached, too
        raise Unauthorized("Invalid, revoked or expired token.")
    return token


async def _load(ctx: TokenChecks, key_hash: str, at: float) -> tuple[Token, None]:
    async with ctx.sessions() as session:
        repo = TokenRepository(session)
        token = await repo.get_by_hash(key_hash)
        if token is None or not _usable(token, at):
            raise Unauthorized("Invalid, revoked or expired token.")
        if token.last_used_at is None or at - token.last_used_at > TOUCH_EVERY_S:
            await repo.touch(token.id, at)
            await session.commit()
    return token, None


async def admin(request: Request, ctx: Context) -> None:
    expected = ctx.settings.admin_token
    credential = _bearer(request.headers.get("authorization", ""))
    if not expected or not constant_time_equals(credential, expected):
        raise Unauthorized("Invalid admin token.")


async def metrics_reader(request: Request, ctx: Context) -> None:
    """The admin token or the metrics token, unless the operator made the metrics public."""
    settings = ctx.settings
    if settings.metrics.public:
        return
    credential = _bearer(request.headers.get("authorization", ""))
    accepted = [token for token in (settings.admin_token, settings.metrics_token) if token]
    # Both comparisons run (a list, not a generator): the time taken says nothing of which.
    if not any([constant_time_equals(credential, token) for token in accepted]):
        raise Unauthorized("Invalid metrics token.")


GatewayToken = Annotated[Token, Depends(gateway_token)]
AdminAuth = Depends(admin)
MetricsAuth = Depends(metrics_reader)
