"""Admin view of every job: who, where, how much, and how its money settled."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.archive.repository import STATES as ARCHIVE_STATES
from gateway.archive.repository import STORED
from gateway.db import now
from gateway.errors import InvalidRequest, NotFound
from gateway.ledger.pricing import micros_to_usd
from gateway.tokens.auth import AdminAuth, Context
from gateway.tokens.crypto import is_id
from gateway.videos.models import Job
from gateway.videos.repository import JobRepository, admin_page, seq_of
from gateway.videos.schemas import Video

router = APIRouter(prefix="/admin/videos", tags=["admin"], dependencies=[AdminAuth])

PUBLIC_TO_STORED = {"queued": ["submitting", "queued"], "in_progress": ["in_progress"],
                    "completed": ["completed"], "failed": ["failed"]}


class AdminVideo(Video):
    token_id: str
    group: str
    billing_mode: str
    kind: str
    upstream: str | None
    price_usd: str
    settlement: str | None
    deleted: bool
    content_stored: bool
    # The gateway's own copy: null until completed, then pending, stored, failed or expired.
    archive_state: str | None
    archive_attempts: int
    age_s: int
    # The upstream's own words about a failure (less our keys): the operator's only.
    upstream_error: str | None

    @classmethod
    def of_job(cls, job: Job, at: float) -> AdminVideo:
        return cls(**Video.of(job).model_dump(), token_id=job.token_id, group=job.group,
                   billing_mode=job.billing_mode, kind=job.kind, upstream=job.upstream,
                   price_usd=micros_to_usd(job.price_micros), settlement=job.settlement,
                   deleted=job.deleted_at is not None,
                   content_stored=job.archive_state == STORED,
                   archive_state=job.archive_state, archive_attempts=job.archive_attempts or 0,
                   age_s=int(at - job.created_at),
                   upstream_error=job.upstream_error)


class AdminVideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AdminVideo]
    first_id: str | None
    last_id: str | None
    has_more: bool


@router.get("", response_model=AdminVideoList)
async def list_videos(ctx: Context, token_id: str | None = None, status: str | None = None,
                      archive: str | None = None, after: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50) -> AdminVideoList:
    if status is not None and status not in PUBLIC_TO_STORED:
        raise InvalidRequest(f"'status' must be one of {', '.join(PUBLIC_TO_STORED)}.",
                             param="status")
    if archive is not None and archive not in ARCHIVE_STATES:
        raise InvalidRequest(f"'archive' must be one of {', '.join(ARCHIVE_STATES)}.",
                             param="archive")
    async with ctx.sessions() as session:
        after_seq = await seq_of(session, after) if after else None
        if after and after_seq is None:
            raise NotFound(f"No video found with id '{after}'.", param="after")
        jobs = await admin_page(session, token_id=token_id,
                                statuses=PUBLIC_TO_STORED[status] if status else [],
                                archive_state=archive, after_seq=after_seq, limit=limit + 1)
    at = now()
    data = [AdminVideo.of_job(job, at) for job in jobs[:limit]]
    return AdminVideoList(data=data, first_id=data[0].id if data else None,
                          last_id=data[-1].id if data else None, has_more=len(jobs) > limit)


async def any_job(sessions: async_sessionmaker[AsyncSession], video_id: str) -> Job:
    """Any token's job, for the operator; unknown ids are 404."""
    job = None
    if is_id(video_id, "video"):
        async with sessions() as session:
            job = await JobRepository(session).get(video_id)
    if job is None:
        raise NotFound(f"No video found with id {video_id[:80]!r}.", param="video_id")
    return job


@router.get("/{video_id}", response_model=AdminVideo)
async def show_video(video_id: str, ctx: Context) -> AdminVideo:
    return AdminVideo.of_job(await any_job(ctx.sessions, video_id), now())
