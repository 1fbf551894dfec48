"""What the archive keeps of each job: one row per stored asset."""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base


class ArchivedAsset(Base):
    __tablename__ = "archived_assets"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    variant: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(200))
    stored_at: Mapped[float] = mapped_column(Double)
