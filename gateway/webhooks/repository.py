"""The outbox's statements: the worker's claim and results, the operator's list and replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

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


def _unleased(at: float) -> Any:
    return or_(Delivery.lease_until.is_(None), Delivery.lease_until < at)


def claim(conn: Connection, owner: str, at: float, until: float,
          limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries nobody else holds, and return those won.

    Plain statements, for ``db.transact``: the worker claims after every few deliveries.
    The UPDATE repeats the SELECT's conditions: between the two another process may have
    claimed a row or tried it and scheduled its next try.
    """
    due = (Delivery.status == "pending", Delivery.next_attempt_at <= at, _unleased(at))
    ids = conn.execute(
        select(Delivery.id).where(*due).order_by(Delivery.next_attempt_at).limit(limit)
    ).scalars().all()
    if not ids:
        return []
    conn.execute(update(Delivery).where(Delivery.id.in_(ids), *due)
                 .values(lease_owner=owner, lease_until=until))
    rows = conn.execute(
        select(Delivery.id, Delivery.body, Delivery.attempts, Delivery.first_attempt_at,
               Delivery.lease_until, Token.webhook_url, Token.webhook_secret,
               Token.webhook_secret_previous, Token.webhook_secret_rotated_at)
        .join(Token, Token.id == Delivery.token_id)
        .where(Delivery.id.in_(ids), Delivery.lease_owner == owner,
               Delivery.lease_until == until))
    # Every row read back holds this claim's lease: its lease_until is ``until``.
    return [Claimed(id_, body, attempts, first, until, url, secret, previous, rotated)
            for id_, body, attempts, first, _lease, url, secret, previous, rotated
            in rows.all()]


def record(conn: Connection, claimed: Claimed, owner: str, values: dict[str, Any]) -> bool:
    """Write an attempt's result and free the row; False if the lease was lost."""
    result = conn.execute(
        update(Delivery)
        .where(Delivery.id == claimed.id, Delivery.lease_owner == owner,
               Delivery.lease_until == claimed.lease_until)
        .values(**values, lease_owner=None, lease_until=None))
    return result.rowcount == 1


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
