"""Money on the tokens table and the append-only ledger, as single guarded statements."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Connection, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import table_of
from gateway.ledger.models import LedgerEntry
from gateway.ledger.pricing import MAX_MICROS
from gateway.tokens.models import Token
from gateway.videos.models import Job

# The statements of every create, built once: a statement object remembers its cache key, so
# running it again skips building the expression and looking up its compiled form by a new key.
# They are row-level (Core) statements, without the ORM's bookkeeping.
_tokens = table_of(Token).c
_amount = bindparam("amount", type_=BigInteger)
HOLD = (
    update(table_of(Token))
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
APPEND = insert(table_of(LedgerEntry))
_jobs = table_of(Job).c
CLAIM_SETTLEMENT = (update(table_of(Job))
                    .where(_jobs.id == bindparam("job"), _jobs.settlement.is_(None))
                    .values(settlement=bindparam("outcome")))
UNHOLD = (
    update(table_of(Token))
    .where(_tokens.id == bindparam("token"))
    .values(
        held_micros=_tokens.held_micros - _amount,
        balance_micros=_tokens.balance_micros + bindparam("back"),
        active_jobs=_tokens.active_jobs - 1,
    )
)
JOB_LIMIT = select(_tokens.active_jobs, _tokens.max_concurrent_jobs).where(
    _tokens.id == bindparam("token"))


# -- in transactions that move money (plain statements on a synchronous connection, db.transact)
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


def claim_settlement(conn: Connection, job_id: str, kind: str) -> bool:
    """Mark a job settled unless something already settled it; True for the one winner."""
    return conn.execute(CLAIM_SETTLEMENT, {"job": job_id, "outcome": kind}).rowcount == 1


def unhold(conn: Connection, token_id: str, amount: int, *, back: int) -> None:
    """Release ``amount`` of held money, ``back`` of it to the balance, the rest charged."""
    conn.execute(UNHOLD, {"token": token_id, "amount": amount, "back": back})


def append(conn: Connection, **values: object) -> None:
    conn.execute(APPEND, values)


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def credit(self, token_id: str, amount: int) -> bool:
        """Add to the balance unless the token would then hold more than MAX_MICROS.

        The bound is part of the UPDATE, so concurrent top-ups cannot pass it together; the
        room is computed here, so the database never adds past the bound to compare.
        """
        room = MAX_MICROS - amount
        result = await self.session.execute(
            update(Token)
            .where(Token.id == token_id, Token.balance_micros + Token.held_micros <= room)
            .values(balance_micros=Token.balance_micros + amount)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def funds(self, token_id: str) -> int | None:
        """Balance plus held money, or None for no such token."""
        result = await self.session.execute(
            select(Token.balance_micros + Token.held_micros).where(Token.id == token_id))
        return result.scalar_one_or_none()

    async def append(self, **values: object) -> None:
        """Write one ledger row now, in a session's transaction (a top-up)."""
        await self.session.execute(APPEND, values)

    async def entries(self, token_id: str, *, after: int | None,
                      limit: int) -> Sequence[LedgerEntry]:
        query = select(LedgerEntry).where(LedgerEntry.token_id == token_id)
        if after is not None:
            query = query.where(LedgerEntry.id > after)
        result = await self.session.execute(query.order_by(LedgerEntry.id).limit(limit))
        return result.scalars().all()
