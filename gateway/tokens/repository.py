from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.tokens.models import Meta, Token


class TokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, token_id: str) -> Token | None:
        return await self.session.get(Token, token_id)

    async def get_by_hash(self, key_hash: str) -> Token | None:
        result = await self.session.execute(select(Token).where(Token.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def list(self) -> Sequence[Token]:
        result = await self.session.execute(select(Token).order_by(Token.created_at, Token.id))
        return result.scalars().all()

    def add(self, token: Token) -> None:
        self.session.add(token)

    async def give_webhook_secret(self, token_id: str, secret: str) -> None:
        """Give the token ``secret`` unless it has one; one statement, so two concurrent
        first URLs cannot each hand out a secret of their own."""
        await self.session.execute(
            update(Token).where(Token.id == token_id)
            .values(webhook_secret=func.coalesce(Token.webhook_secret, secret)))

    async def rotate_webhook_secret(self, token_id: str, secret: str, at: float) -> bool:
        """Make ``secret`` the token's; the one it replaces keeps signing for the grace."""
        result = await self.session.execute(
            update(Token).where(Token.id == token_id)
            .values(webhook_secret=secret, webhook_secret_previous=Token.webhook_secret,
                    webhook_secret_rotated_at=at))
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def touch(self, token_id: str, at: float) -> None:
        await self.session.execute(
            update(Token).where(Token.id == token_id).values(last_used_at=at)
        )


class MetaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> str | None:
        row = await self.session.get(Meta, key)
        return row.value if row else None

    def add(self, key: str, value: str) -> None:
        self.session.add(Meta(key=key, value=value))
