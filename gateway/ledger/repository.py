"""Money on the tokens table and the append-only ledger, as single guarded statements."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ledger.models import LedgerEntry
from gateway.tokens.models import Token
from gateway.videos.models import Job

# The statements of every create, built once: a statement object remembers its cache key, so
# running it again skips building the expression and looking up its compiled form by a new key.
# They are row-level (Core) statements, without the ORM's bookkeeping.
_tokens = Token.__table__.c
_amount = bindparam("amount")
HOLD = (
    update(Token.__table__)
    .where(
        _tokens.id == bindparam("token"),
        _tokens.balance_micros >= _amount,
        or_(_tokens.max_concurrent_jobs.is_(None),
            _tokens.active_jobs < _tokens.max_concurrent_jobs),
    )
    .values(
        balance_micros=_tokens.balance_micros - _amount,
        held_micros=_tokens.held_micros + _amount,
        active_jobs=_tokens.active_jobs + 1,
    )
)
APPEND = insert(LedgerEntry.__table__)
JOB_LIMIT = select(_tokens.active_jobs, _tokens.max_concurrent_jobs).where(
    _tokens.id == bindparam("token"))


# -- in a create's transaction (plain statements on a synchronous connection, db.transact) ----
def try_hold(conn: Connection, token_id: str, amount: int) -> bool:
    """Move ``amount`` from balance to held in one conditional UPDATE.

    The condition is checked by the database as part of the write, so concurrent holds
    (threads, processes) can never spend the same money or exceed the job limit.
    """
    return conn.execute(HOLD, {"token": token_id, "amount": amount}).rowcount == 1


def job_limit(conn: Connection, token_id: str) -> tuple[int, int | None]:
    """The token's unfinished jobs and its limit on them."""
    active, limit = conn.execute(JOB_LIMIT, {"token": token_id}).one()
    return active, limit


def append(conn: Connection, **values: object) -> None:
    conn.execute(APPEND, values)


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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
        """Write one ledger row now (rows are never loaded back here)."""
        await self.session.execute(APPEND, values)

    async def entries(self, token_id: str, *, after: int | None,
                      limit: int) -> Sequence[LedgerEntry]:
        query = select(LedgerEntry).where(LedgerEntry.token_id == token_id)
        if after is not None:
            query = query.where(LedgerEntry.id > after)
        result = await self.session.execute(query.order_by(LedgerEntry.id).limit(limit))
        return result.scalars().all()
