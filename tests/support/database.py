"""Plain SQL on a test gateway's database, as an operator's own client would send it."""

from __future__ import annotations

import asyncio

from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine


def execute(database_url: str, statement: str) -> None:
    """Run one statement in its own transaction; the database's refusal is raised."""
    async def run() -> None:
        engine = create_async_engine(database_url, poolclass=pool.NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())
