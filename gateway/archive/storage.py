"""The archive's storage seam: one small async protocol for blobs, whatever holds them.

A blob is written once from a stream and read back whole or by byte range. Callers see only
the types and errors defined here; each backend translates its own library's exceptions into
them, so nothing above this seam knows whether the bytes live on a disk or in a bucket.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

# Big enough that per-chunk overhead (a thread hop, a syscall, a socket write) stays small
# beside the copying, small enough that a few concurrent streams keep memory flat.
CHUNK_SIZE = 1024 * 1024

# Path-like keys ("vid_123/video.mp4") whose segments cannot climb out of a directory or
# name a hidden file, so a key is safe as a file path and as an object name alike.
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
MAX_KEY_LENGTH = 512
# A MIME type as a header value may carry it, and nothing that could split a header.
_CONTENT_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(?:;[ -~]*)?")


class StorageError(Exception):
    """The store could not do what was asked; the message names the operation, never a secret."""


class BlobNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no blob under {key!r}")
        self.key = key


class InvalidKey(StorageError, ValueError):
    """A key that could name something outside the store; refused before any IO."""


class LengthMismatch(StorageError):
    """The stream ended at another length than the caller expected; nothing was kept."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"{key!r}: expected {expected} bytes, the stream gave {actual}")
        self.expected = expected
        self.actual = actual


class RangeNotSatisfiable(StorageError):
    """The range starts past the end; ``size`` lets the caller answer 416 with it."""

    def __init__(self, key: str, size: int) -> None:
        super().__init__(f"{key!r}: range outside its {size} bytes")
        self.size = size


def check_key(key: str) -> str:
    segments = key.split("/")
    if len(key) > MAX_KEY_LENGTH or not all(_KEY_SEGMENT.fullmatch(s) for s in segments):
        raise InvalidKey(f"invalid blob key {key!r}")
    return key


def check_content_type(content_type: str) -> str:
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise ValueError(f"invalid content type {content_type!r}")
    return content_type


@dataclass(frozen=True, slots=True)
class Stored:
    """What a put kept: the caller records these before it calls the blob stored."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    content_type: str
    last_modified: datetime  # timezone-aware, UTC
    sha256: str | None  # None only for an object some other writer put there


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """One listed blob: enough for a retention sweep to decide without opening it."""

    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One HTTP byte range: ``start``..``end`` inclusive (``end`` None: to the last byte), or,
    with ``suffix``, the last ``suffix`` bytes."""

    start: int = 0
    end: int | None = None
    suffix: int | None = None

    def __post_init__(self) -> None:
        if self.suffix is not None:
            if self.suffix < 1 or self.start != 0 or self.end is not None:
                raise ValueError("a suffix range takes only a positive suffix")
        elif self.start < 0 or (self.end is not None and self.end < self.start):
            raise ValueError(f"bad byte range {self.start}-{self.end}")

    @classmethod
    def last(cls, count: int) -> ByteRange:
        return cls(suffix=count)

    def resolve(self, key: str, size: int) -> tuple[int, int]:
        """The half-open ``[offset, stop)`` this range covers in a blob of ``size`` bytes."""
        if size == 0 or (self.suffix is None and self.start >= size):
            raise RangeNotSatisfiable(key, size)
        if self.suffix is not None:
            return max(0, size - self.suffix), size
        stop = size if self.end is None else min(self.end + 1, size)
        return self.start, stop

    def header(self) -> str:
        if self.suffix is not None:
            return f"bytes=-{self.suffix}"
        return f"bytes={self.start}-{'' if self.end is None else self.end}"


class BlobRead:
    """An opened blob: its metadata, where the bytes start and stop, and the bytes.

    Iterate it for the chunks; close it (``aclose`` or ``async with``) to give back the file
    or the connection, also when the reader stops early.
    """

    def __init__(self, info: BlobInfo, offset: int, stop: int, chunks: AsyncIterator[bytes],
                 close: Callable[[], Awaitable[None]]) -> None:
        self.info = info
        self.offset = offset
        self.stop = stop
        self._chunks = chunks
        self._close = close
        self._closed = False

    @property
    def length(self) -> int:
        return self.stop - self.offset

    @property
    def partial(self) -> bool:
        return self.length != self.info.size

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def read(self) -> bytes:
        """The whole range in memory: for small blobs and tests only."""
        return b"".join([chunk async for chunk in self._chunks])

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class BlobStore(Protocol):
    async def put(self, key: str, stream: AsyncIterator[bytes], content_type: str, *,
                  expected_size: int | None = None) -> Stored:
        """Keep the stream under ``key``, whole or not at all.

        Length and sha256 are computed as the bytes pass; memory holds at most a few chunks.
        If the stream raises, its exception propagates and nothing is left behind; an earlier
        blob under the key is replaced only once the new one is complete.
        """
        ...

    async def open(self, key: str, byte_range: ByteRange | None = None) -> BlobRead:
        """Raises ``BlobNotFound`` or ``RangeNotSatisfiable``."""
        ...

    async def stat(self, key: str) -> BlobInfo | None: ...

    async def delete(self, key: str) -> None:
        """Removes the blob; a key already absent is not an error."""
        ...

    def list_blobs(self, prefix: str = "") -> AsyncIterator[BlobEntry]: ...

    async def presign(self, key: str, expires_s: int, *, head: bool = False) -> str | None:
        """A URL that reads the blob without credentials until it expires, or None when the
        backend cannot issue one (the caller then streams the bytes itself). A URL is signed
        for one method: ``head`` makes it answer HEAD, where a GET's is refused."""
        ...

    async def aclose(self) -> None: ...
