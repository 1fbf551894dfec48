from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Double, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from gateway.ledger.pricing import MAX_MICROS


class Token(Base):
    __tablename__ = "tokens"
    # The last line of defence: whatever code runs, money on a token never goes negative nor
    # past the bound the code keeps it within.
    __table_args__ = (
        CheckConstraint("balance_micros >= 0", name="balance_not_negative"),
        CheckConstraint("held_micros >= 0", name="held_not_negative"),
        CheckConstraint(f"balance_micros + held_micros <= {MAX_MICROS}",
                        name="funds_within_bound"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    group: Mapped[str] = mapped_column(String(100))
    billing_mode: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(20))
    balance_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    held_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    # Jobs holding money right now; bounded by max_concurrent_jobs in the same UPDATE as the hold.
    active_jobs: Mapped[int] = mapped_column(Integer, default=0)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_concurrent_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    last_used_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Kept in clear, unlike the token itself: the gateway signs every event with them. The
    # previous secret signs too until webhooks.secret_grace_s after the rotation.
    webhook_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    webhook_secret_previous: Mapped[str | None] = mapped_column(String(100), nullable=True)
    webhook_secret_rotated_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class Meta(Base):
    """Small key/value facts the gateway keeps for itself (e.g. the generated token-hash key)."""

    __tablename__ = "gateway_meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
