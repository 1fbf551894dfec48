from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from gateway.videos.models import Job


class VideoError(BaseModel):
    code: str
    message: str


def public_status(status: str) -> str:
    """A job persisted before its upstream call is, to the client, already queued."""
    return "queued" if status == "submitting" else status


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


class Video(BaseModel):
    """OpenAI's Video object; every field is always present, null where unset."""

    id: str
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    size: str
    seconds: str
    quality: str | None
    prompt: str | None
    remixed_from_video_id: str | None
    error: VideoError | None

    @classmethod
    def of(cls, job: Job) -> Video:
        error = None
        if job.status == "failed":
            error = VideoError(code=job.error_code or "video_generation_failed",
                               message=job.error_message or "The video could not be generated.")
        return cls(
            id=job.id, model=job.model,
            status=public_status(job.status),  # type: ignore[arg-type]
            progress=job.progress, created_at=int(job.created_at),
            completed_at=_int(job.completed_at), expires_at=_int(job.expires_at),
            size=job.size, seconds=str(job.seconds), quality=job.quality, prompt=job.prompt,
            remixed_from_video_id=job.remixed_from_video_id, error=error,
        )


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True

