"""The operator's view of the outbox: list deliveries, and send one again."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core import Core
from gateway.db import now
from gateway.errors import InvalidRequest, NotFound
from gateway.tokens.crypto import is_id
from gateway.webhooks.models import STATUSES, WebhookDelivery
from gateway.webhooks.repository import DeliveryRepository


def _not_found(delivery_id: str, param: str) -> NotFound:
    return NotFound(f"No webhook delivery with id {delivery_id[:80]!r}.", param=param)


async def deliveries(ctx: Core, *, status: str | None, token_id: str | None,
                     after: str | None, limit: int) -> Sequence[WebhookDelivery]:
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"'status' must be one of {', '.join(STATUSES)}.", param="status")
    if token_id is not None and not is_id(token_id, "tok", 12):
        return []  # no token has such an id: nothing to ask the database
    async with ctx.sessions() as session:
        repo = DeliveryRepository(session)
        last = None
        if after is not None:
            last = await repo.get(after) if is_id(after, "evt") else None
            if last is None:
                raise _not_found(after, "after")
        return await repo.page(status=status, token_id=token_id, after=last, limit=limit)


async def replay(ctx: Core, delivery_id: str) -> WebhookDelivery:
    """Queue the event again under its own id (receivers dedupe on webhook-id)."""
    if not is_id(delivery_id, "evt"):
        raise _not_found(delivery_id, "delivery_id")
    async with ctx.sessions() as session, session.begin():
        repo = DeliveryRepository(session)
        if not await repo.replay(delivery_id, now()):
            raise _not_found(delivery_id, "delivery_id")
    async with ctx.sessions() as session:
        row = await DeliveryRepository(session).get(delivery_id)
    assert row is not None
    return row
