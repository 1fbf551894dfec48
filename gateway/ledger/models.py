from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Double, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId
from gateway.ledger.pricing import MAX_MICROS


class LedgerEntry(Base):
    """Append-only record of every movement of money; rows are never updated or deleted."""

    __tablename__ = "ledger"
    __table_args__ = (
        Index("ix_ledger_token_id_id", "token_id", "id"),
        CheckConstraint(f"amount_micros >= 0 AND amount_micros <= {MAX_MICROS}",
                        name="amount_within_bound"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("tokens.id"))
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # topup | hold | capture | refund | release
    kind: Mapped[str] = mapped_column(String(16))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    # Set only on capture/refund/release: the unique index makes a second settlement of
    # a job impossible, whichever process or race attempts it.
    settles_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[float] = mapped_column(Double, index=True)
