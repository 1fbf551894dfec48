from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId
from gateway.ledger.pricing import MAX_MICROS

# Internal states: "submitting" is a job persisted (money held) before its upstream call.
UNFINISHED = ("submitting", "queued", "in_progress")
TERMINAL = ("completed", "failed")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_token_id_seq", "token_id", "seq"),
        Index("ix_jobs_status_polled_at", "status", "polled_at"),
        Index("uq_jobs_token_id_idempotency_key", "token_id", "idempotency_key", unique=True),
        CheckConstraint(f"price_micros >= 0 AND price_micros <= {MAX_MICROS}",
                        name="price_within_bound"),
        Index("ix_jobs_archive_state_archive_next_at", "archive_state", "archive_next_at"),
        Index("ix_jobs_archive_state_retain_until", "archive_state", "retain_until"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("tokens.id"))
    group: Mapped[str] = mapped_column(String(100))
    billing_mode: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(16), default="create")
    model: Mapped[str] = mapped_column(String(100))
    size: Mapped[str] = mapped_column(String(20))
    seconds: Mapped[int] = mapped_column(Integer)
    quality: Mapped[str | None] = mapped_column(String(20), nullable=True)
    prompt: Mapped[str] = mapped_column(Text)
    remixed_from_video_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    price_micros: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    # What a client sees of a failure: already sanitized (see upstreams.sanitize).
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the upstream said of it, for the operator only (the admin API).
    upstream_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    upstream: Mapped[str | None] = mapped_column(String(100), nullable=True)
    upstream_key_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    upstream_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    upstream_model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Compat upstreams hand out a download URL instead of a content route.
    content_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # File name of the gateway's own copy of the video, once stored.
    content_file: Mapped[str | None] = mapped_column(String(200), nullable=True)
    extra: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    # What the job's flavor needs to poll it later (e.g. Kling's task kind), as it said.
    poll_state: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    # Whether the client asked for generated sound (priced by pricing.audio_per_second).
    audio: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # What the upstream charged the operator for a completed job (its ``cost`` table), if known.
    cost_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # sha256 of the request the key was first sent with (route and parsed parameters).
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    settlement: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    polled_at: Mapped[float] = mapped_column(Double)
    completed_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    deleted_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Double, nullable=True)
    # The gateway's own copy (gateway.archive): None until the job completes, then pending,
    # stored or failed; expired once retention swept it.
    archive_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # What the upstream offered at completion: variant -> its download URL, or None when it is
    # fetched through the flavor's content route.
    archive_assets: Mapped[dict[str, str | None] | None] = mapped_column(JSON, nullable=True)
    archive_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    archive_next_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    archive_lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    archive_lease_until: Mapped[float | None] = mapped_column(Double, nullable=True)
    # When the upstream's links die: retries stop here.
    archive_deadline: Mapped[float | None] = mapped_column(Double, nullable=True)
    archived_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # None with archive_state stored: kept forever.
    retain_until: Mapped[float | None] = mapped_column(Double, nullable=True)



def replace_job(job: Job, **values: object) -> Job:
    """A detached copy of ``job`` with ``values`` applied: what an UPDATE just wrote."""
    copy = Job(**{column.key: getattr(job, column.key) for column in Job.__table__.columns})
    for name, value in values.items():
        setattr(copy, name, value)
    return copy


class VideoCharacter(Base):
    """A character (cameo) created on an upstream, owned by one token."""

    __tablename__ = "characters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("tokens.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    upstream: Mapped[str] = mapped_column(String(100))
    upstream_key_index: Mapped[int] = mapped_column(Integer)
    upstream_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Double)
