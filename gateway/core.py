"""The resources every part of the gateway that touches only the database needs.

The CLI's operator commands build this alone (a top-up starts no upstream client); a serving
process builds it as the base of its ``AppContext`` (``app.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.cache import TTLCache
from gateway.config import Settings
from gateway.db import create_engine, create_sessionmaker
from gateway.tokens.models import Token
from gateway.tokens.repository import MetaRepository

HASH_KEY = "token_hash_key"


@dataclass
class Core:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # Tokens are hashed with it, and content links signed.
    hash_key: bytes
    # Usable tokens by key hash.
    tokens: TTLCache[Token]


async def hash_key(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> bytes:
    """The key tokens are hashed with: configured, or generated once and kept in the database."""
    if settings.secret_key:
        return settings.secret_key.encode()
    async with sessions() as session:
        repo = MetaRepository(session)
        value = await repo.get(HASH_KEY)
        if value is None:
            repo.add(HASH_KEY, secrets.token_hex(32))
            try:
                await session.commit()
            except IntegrityError:
                # Another process created it first; use theirs.
                await session.rollback()
            value = await repo.get(HASH_KEY)
    assert value is not None
    return value.encode()


@asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    engine = create_engine(settings.database_url)
    try:
        sessions = create_sessionmaker(engine)
        yield Core(settings=settings, engine=engine, sessions=sessions,
                   hash_key=await hash_key(settings, sessions),
                   tokens=TTLCache(settings.cache_s))
    finally:
        await engine.dispose()
