from __future__ import annotations

from sqlalchemy import Double, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base

STATUSES = ("pending", "delivered", "failed")


class WebhookDelivery(Base):
    """One event and how its delivery goes: the outbox the delivery worker drains.

    The row is written in the transaction that ended the job, so an event exists exactly when
    its job ended; the worker claims due rows with a lease, as the reconciler claims jobs.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The worker's claim: pending rows whose next try is due.
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_token_id_created_at", "token_id", "created_at"),
        Index("ix_webhook_deliveries_created_at", "created_at"),
    )

    # The event's id, sent as webhook-id on every try.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("tokens.id"))
    job_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    # The exact bytes sent and signed, the same on every try.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Double)
    # Retries stop webhooks.max_age_s after this; a replay starts the count again.
    first_attempt_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_attempt_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    next_attempt_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Double, nullable=True)
