from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
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
