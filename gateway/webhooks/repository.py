"""The outbox's statements: the worker's claim and results, the operator's list and replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import table_of
from gateway.tokens.models import Token
from gateway.webhooks.models import WebhookDelivery as Delivery


@dataclass(frozen=True)
class Claimed:
    """A delivery this process holds the lease of, with what its attempt needs."""

    id: str
    body: bytes
    attempts: int
    first_attempt_at: float | None
    lease_until: float
    url: str | None
    secret: str | None
    previous_secret: str | None
    rotated_at: float | None


_rows = table_of(Delivery).c
_tokens = table_of(Token).c
# Built once: each claim and each flush of results reuses the compiled form.
_UNLEASED = or_(_rows.lease_until.is_(None), _rows.lease_until < bindparam("at"))
_DUE = (_rows.status == "pending", _rows.next_attempt_at <= bindparam("at"), _UNLEASED)
# The UPDATE checks the due conditions again: between its subquery's read and a row's update
# another process may have claimed the row, or tried it and scheduled its next try, and a
# row's own conditions are what PostgreSQL checks again once the other's lock is gone. They
# are written so that no index serves them (``+ 0``, ``|| ''``): SQLite would otherwise walk
# the (status, next_attempt_at) index over every due row, thousands at volume, rather than
# look up the few ids the subquery chose.
_LEASE = (
    update(table_of(Delivery))
    .where(_rows.id.in_(select(_rows.id).where(*_DUE).order_by(_rows.next_attempt_at)
                        .limit(bindparam("limit"))),
           _rows.status + "" == "pending", _rows.next_attempt_at + 0 <= bindparam("at"),
           _UNLEASED)
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
    .returning(_rows.id, _rows.body, _rows.attempts, _rows.first_attempt_at,
               _rows.next_attempt_at, _rows.token_id))
_WEBHOOKS = select(_tokens.id, _tokens.webhook_url, _tokens.webhook_secret,
                   _tokens.webhook_secret_previous, _tokens.webhook_secret_rotated_at,
                   ).where(_tokens.id.in_(bindparam("tokens", expanding=True)))
_HELD = select(_rows.id, _rows.lease_until).where(
    _rows.id.in_(bindparam("ids", expanding=True)), _rows.lease_owner == bindparam("owner"))
_RECORD = (
    update(table_of(Delivery))
    .where(_rows.id == bindparam("r_id"), _rows.lease_owner == bindparam("r_owner"),
           _rows.lease_until == bindparam("r_until"))
    .values(status=bindparam("r_status"), attempts=bindparam("r_attempts"),
            first_attempt_at=bindparam("r_first"), last_attempt_at=bindparam("r_last"),
            last_status=bindparam("r_code"), last_error=bindparam("r_error"),
            next_attempt_at=bindparam("r_next"), delivered_at=bindparam("r_delivered"),
            lease_owner=None, lease_until=None))


def claim(conn: Connection, owner: str, at: float, until: float,
          limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries nobody else holds, and return those won, the
    longest due first.

    Plain statements, for ``db.transact``: two a claim, however many rows it wins.
    """
    leased = sorted(conn.execute(_LEASE, {"at": at, "limit": limit, "owner": owner,
                                          "until": until}),
                    key=lambda row: row.next_attempt_at)  # RETURNING's order is the engine's
    if not leased:
        return []
    webhooks = {row[0]: row[1:] for row in conn.execute(
        _WEBHOOKS, {"tokens": sorted({row.token_id for row in leased})})}
    # A token is never deleted while it has deliveries (the foreign key); its webhook may be.
    return [Claimed(row.id, row.body, row.attempts, row.first_attempt_at, until,
                    *webhooks.get(row.token_id, (None, None, None, None)))
            for row in leased]


@dataclass(frozen=True)
class Result:
    """What one attempt leaves on its row; ``status`` is pending while retries remain."""

    claimed: Claimed
    status: str
    last_attempt_at: float
    first_attempt_at: float
    last_status: int | None
    last_error: str | None
    next_attempt_at: float | None
    delivered_at: float | None


def record(conn: Connection, owner: str, results: Sequence[Result]) -> list[Result]:
    """Write attempts' results and free their rows, in one go; those written are returned
    (the others' leases were lost: the process that took a row over has the say)."""
    held = {id_: until for id_, until in conn.execute(
        _HELD, {"ids": [r.claimed.id for r in results], "owner": owner})}
    kept = [r for r in results if held.get(r.claimed.id) == r.claimed.lease_until]
    if kept:
        conn.execute(_RECORD, [{
            "r_id": r.claimed.id, "r_owner": owner, "r_until": r.claimed.lease_until,
            "r_status": r.status, "r_attempts": r.claimed.attempts + 1,
            "r_first": r.first_attempt_at, "r_last": r.last_attempt_at,
            "r_code": r.last_status, "r_error": r.last_error, "r_next": r.next_attempt_at,
            "r_delivered": r.delivered_at} for r in kept])
    return kept


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, owner: str, at: float, until: float, limit: int) -> list[Claimed]:
        """``claim`` in this session's transaction."""
        return await self.session.run_sync(
            lambda sync: claim(sync.connection(), owner, at, until, limit))

    async def release(self, owner: str) -> None:
        """Free every row this process holds, so another takes them up without waiting."""
        await self.session.execute(
            update(Delivery).where(Delivery.lease_owner == owner)
            .values(lease_owner=None, lease_until=None))

    async def queue(self) -> tuple[int, float | None]:
        """How many events wait to be delivered, and when the oldest of them was made."""
        count, oldest = (await self.session.execute(
            select(func.count(), func.min(Delivery.created_at))
            .where(Delivery.status == "pending"))).one()
        return int(count), oldest

    async def get(self, delivery_id: str) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id)

    async def page(self, *, status: str | None, token_id: str | None, after: Delivery | None,
                   limit: int) -> Sequence[Delivery]:
        """Newest first; ``after`` is the last row of the previous page."""
        query = select(Delivery)
        if status:
            query = query.where(Delivery.status == status)
        if token_id:
            query = query.where(Delivery.token_id == token_id)
        if after is not None:
            query = query.where(tuple_(Delivery.created_at, Delivery.id)
                                < tuple_(after.created_at, after.id))
        query = query.order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def replay(self, delivery_id: str, at: float) -> bool:
        """Send the event again, now, under its own id, with a fresh round of retries."""
        result = await self.session.execute(
            update(Delivery).where(Delivery.id == delivery_id)
            .values(status="pending", next_attempt_at=at, attempts=0, first_attempt_at=None,
                    delivered_at=None))
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]
