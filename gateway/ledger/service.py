"""Hold, capture, refund and release: each a ledger entry, each applied exactly once.

These functions take part in the caller's transaction; the caller owns begin/commit, and
counts what moved in the metrics once it has committed.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import now
from gateway.errors import InsufficientQuota, InvalidRequest, RateLimited
from gateway.ledger import repository
from gateway.ledger.pricing import MAX_MICROS, micros_to_usd
from gateway.ledger.repository import LedgerRepository
from gateway.videos.models import Job

# Outcome of a job -> (ledger kind, whether the hold goes back to the balance).
SETTLEMENTS = {"capture": False, "refund": True, "release": True}


def hold(conn: Connection, token_id: str, job_id: str, amount: int) -> None:
    """Move a job's price into held money, or raise why it cannot be held.

    Part of a create's transaction, on a synchronous connection (see ``db.transact``).
    """
    if not repository.try_hold(conn, token_id, amount):
        active, limit = repository.job_limit(conn, token_id)
        if limit is not None and active >= limit:
            raise RateLimited(
                f"This token already has {active} unfinished jobs (limit {limit}).",
                retry_after=10,
            )
        raise InsufficientQuota(
            "Your balance is too low for this request. Top up the token and try again."
        )
    repository.append(conn, token_id=token_id, job_id=job_id, kind="hold",
                      amount_micros=amount, created_at=now())


def settle(conn: Connection, job: Job, kind: str, note: str | None = None, *,
           charged: int | None = None) -> bool:
    """Capture, refund or release a job's hold; False when it was already settled.

    A capture of less than the hold (``charged``: the price of what was rendered) gives the
    rest back in the same transaction, as a refund entry of its own beside the capture.
    """
    if not repository.claim_settlement(conn, job.id, kind):
        return False
    hold = job.price_micros
    taken = hold if kind == "capture" else 0
    if kind == "capture" and charged is not None:
        taken = max(0, min(charged, hold))
    back = hold if SETTLEMENTS[kind] else hold - taken
    repository.unhold(conn, job.token_id, hold, back=back)
    at = now()
    repository.append(conn, token_id=job.token_id, job_id=job.id, kind=kind,
                      amount_micros=hold if kind != "capture" else taken,
                      settles_job_id=job.id, note=note, created_at=at)
    if kind == "capture" and taken < hold:
        repository.append(conn, token_id=job.token_id, job_id=job.id, kind="refund",
                          amount_micros=hold - taken, note="not rendered", created_at=at)
    return True


async def topup(session: AsyncSession, token_id: str, amount: int, note: str | None, *,
                param: str) -> bool:
    """Credit a top-up within the bound on a token's money; False for no such token."""
    repo = LedgerRepository(session)
    if not await repo.credit(token_id, amount):
        funds = await repo.funds(token_id)
        if funds is None:
            return False
        raise InvalidRequest(
            f"A token may hold at most {micros_to_usd(MAX_MICROS)} USD, balance and held "
            f"together; this one holds {micros_to_usd(funds)} USD, so it can take at most "
            f"{micros_to_usd(MAX_MICROS - funds)} more.", param=param)
    await repo.append(token_id=token_id, kind="topup", amount_micros=amount, note=note,
                      created_at=now())
    return True
