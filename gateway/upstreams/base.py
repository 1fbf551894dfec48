"""The upstream seam: what the rest of the gateway knows of a provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import httpx

from gateway.upstreams.sanitize import PublicError

# Every status word seen from OpenAI-format providers, folded onto OpenAI's four.
# Anything not listed is treated as still running: only an explicit failure ends a job.
STATUS_MAP = {
    "queued": "queued", "pending": "queued", "submitted": "queued", "waiting": "queued",
    "in_progress": "in_progress", "processing": "in_progress", "running": "in_progress",
    "generating": "in_progress",
    "completed": "completed", "succeeded": "completed", "success": "completed",
    "done": "completed", "finished": "completed",
    "failed": "failed", "failure": "failed", "error": "failed", "cancelled": "failed",
    "canceled": "failed", "expired": "failed", "rejected": "failed",
}


def normalize_status(raw: object) -> str:
    return STATUS_MAP.get(str(raw).strip().lower(), "in_progress")


@dataclass(frozen=True)
class UpstreamJob:
    id: str
    status: str
    progress: int = 0
    # A failed job's error as a client may see it, and as the upstream said it (operator only).
    error_code: str | None = None
    error_message: str | None = None
    error_raw: str | None = None
    completed_at: float | None = None
    expires_at: float | None = None
    content_url: str | None = None


@dataclass(frozen=True)
class ImageFile:
    data: bytes
    filename: str
    content_type: str


@dataclass(frozen=True)
class VideoUpload:
    """A source video sent with an edit, extension or character; streamed, not buffered."""

    file: BinaryIO
    filename: str
    content_type: str
    duration_s: float  # as its container says, read before anything was held

    def part(self) -> tuple[str, BinaryIO, str]:
        self.file.seek(0)  # each failover attempt sends the whole file again
        return self.filename, self.file, self.content_type


@dataclass(frozen=True)
class DeriveRequest:
    """An edit or extension of an upstream video (by its upstream id) or of an upload."""

    kind: str  # "edits" or "extensions"
    prompt: str
    seconds: int | None = None
    source_id: str | None = None
    upload: VideoUpload | None = None
    model: str | None = None
    size: str | None = None


@dataclass(frozen=True)
class Character:
    id: str
    name: str | None
    created_at: int


@dataclass(frozen=True)
class SubmitRequest:
    model: str
    prompt: str
    seconds: int
    size: str
    metadata: str | None = None
    image: ImageFile | None = None
    # {"image_url": ...} or {"file_id": ...}, forwarded as given.
    image_reference: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class UpstreamError(Exception):
    """Base of everything an upstream call can raise; messages never carry secrets."""


class UpstreamUnavailable(UpstreamError):
    """No job was created (connect error, 5xx, 429): safe to try another upstream."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamAmbiguous(UpstreamError):
    """The request was sent but no answer came: the upstream may have started a job."""


class UpstreamRefused(UpstreamError):
    """The upstream answered 4xx: the request itself is at fault."""

    def __init__(self, status: int, error: PublicError) -> None:
        super().__init__(error.message)
        self.status = status
        self.message = error.message
        self.code = error.code
        self.param = error.param
        self.raw = error.raw


class UpstreamGone(UpstreamError):
    """The upstream no longer knows the job (404)."""


class Adapter(Protocol):
    async def create(self, request: SubmitRequest, key: str) -> UpstreamJob: ...

    async def retrieve(self, upstream_id: str, key: str) -> UpstreamJob: ...

    async def remix(self, upstream_id: str, prompt: str, key: str) -> UpstreamJob: ...

    async def derive(self, request: DeriveRequest, key: str) -> UpstreamJob: ...

    async def create_character(self, name: str, upload: VideoUpload, key: str) -> Character: ...

    async def delete(self, upstream_id: str, key: str) -> None: ...

    def content(self, upstream_id: str, key: str, *, variant: str, content_url: str | None,
                range_header: str | None) -> AbstractAsyncContextManager[httpx.Response]: ...


async def aiter_closing(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()
