"""What every flavor shares: the inputs it is handed and the errors an upstream call raises.

The seam itself (the ``Flavor`` protocol) is in ``flavor.py``; a poll's outcomes in
``outcome.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from gateway.upstreams.sanitize import PublicError


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
