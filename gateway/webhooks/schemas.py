"""What the operator sees of a webhook delivery."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from gateway.webhooks.models import WebhookDelivery


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


class DeliveryOut(BaseModel):
    id: str
    object: Literal["gateway.webhook_delivery"] = "gateway.webhook_delivery"
    token_id: str
    video_id: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: int
    first_attempt_at: int | None
    last_attempt_at: int | None
    next_attempt_at: int | None
    delivered_at: int | None
    # The receiver's last HTTP status, and what went wrong with the last try.
    last_status: int | None
    last_error: str | None
    # The event exactly as it is sent.
    event: dict[str, Any]

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=row.id, token_id=row.token_id, video_id=row.job_id, type=row.type,
            status=row.status,
            attempts=row.attempts, created_at=int(row.created_at),
            first_attempt_at=_int_or_none(row.first_attempt_at),
            last_attempt_at=_int_or_none(row.last_attempt_at),
            next_attempt_at=_int_or_none(row.next_attempt_at) if row.status == "pending"
            else None,
            delivered_at=_int_or_none(row.delivered_at), last_status=row.last_status,
            last_error=row.last_error, event=json.loads(row.body),
        )


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DeliveryOut]
    first_id: str | None
    last_id: str | None
    has_more: bool
