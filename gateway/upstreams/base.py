"""The upstream seam: what the rest of the gateway knows of a provider."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import httpx

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
    error_code: str | None = None
    error_message: str | None = None
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

    def __init__(self, status: int, message: str, *, code: str | None, param: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


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


_SECRETISH = [
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), "[redacted]"),
    (re.compile(r"(?i)bearer\s+\S+"), "Bearer [redacted]"),
    (re.compile(r"https?://\S+"), "[url]"),
    (re.compile(r"(?i)(api[_-]?key|key|token)\s*[=:]\s*\S+"), r"\1=[redacted]"),
]


def sanitize(message: str, *secrets: str | None) -> str:
    """Strip keys, URLs and the given literals (upstream names, ids) from an upstream message."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    for pattern, replacement in _SECRETISH:
        message = pattern.sub(replacement, message)
    return message[:500]


async def aiter_closing(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()
