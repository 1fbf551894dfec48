"""Money on the tokens table and the append-only ledger, as single guarded statements."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ledger.models import LedgerEntry
from gateway.tokens.models import Token
from gateway.videos.models import Job


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def try_hold(self, token_id: str, amount: int) -> bool:
        """Move ``amount`` from balance to held in one conditional UPDATE.

        The condition is checked by the database as part of the write, so concurrent holds
        (threads, processes) can never spend the same money or exceed the job limit.
        """
        tokens = Token.__table__.c  # a row-level statement: no ORM bookkeeping on the hot path
        result = await self.session.execute(
            update(Token.__table__)
            .where(
                tokens.id == token_id,
                tokens.balance_micros >= amount,
                or_(tokens.max_concurrent_jobs.is_(None),
                    tokens.active_jobs < tokens.max_concurrent_jobs),
            )
            .values(
                balance_micros=tokens.balance_micros - amount,
                held_micros=tokens.held_micros + amount,
                active_jobs=tokens.active_jobs + 1,
            )
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def unhold(self, token_id: str, amount: int, *, back_to_balance: bool) -> None:
        await self.session.execute(
            update(Token)
            .where(Token.id == token_id)
            .values(
                held_micros=Token.held_micros - amount,
                balance_micros=Token.balance_micros + (amount if back_to_balance else 0),
                active_jobs=Token.active_jobs - 1,
            )
        )

    async def credit(self, token_id: str, amount: int) -> bool:
        result = await self.session.execute(
            update(Token)
            .where(Token.id == token_id)
            .values(balance_micros=Token.balance_micros + amount)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def claim_settlement(self, job_id: str, kind: str) -> bool:
        """Mark a job settled unless something already settled it; True for the one winner."""
        result = await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.settlement.is_(None))
            .values(settlement=kind)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def append(self, **values: object) -> None:
        """Write one ledger row now (a Core INSERT: rows are never loaded back here)."""
        await self.session.execute(insert(LedgerEntry.__table__).values(**values))

    async def entries(self, token_id: str, *, after: int | None,
                      limit: int) -> Sequence[LedgerEntry]:
        query = select(LedgerEntry).where(LedgerEntry.token_id == token_id)
        if after is not None:
            query = query.where(LedgerEntry.id > after)
        result = await self.session.execute(query.order_by(LedgerEntry.id).limit(limit))
        return result.scalars().all()
