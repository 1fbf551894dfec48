"""The archive in any S3-compatible bucket, so replicas on different hosts share one archive.

Large blobs go up as multipart uploads, one part in flight while the next one fills, so memory
stays at about two parts whatever the blob's size; a failed upload is aborted, never left half
made. The sha256 is known only once the last byte has passed, after S3 has fixed the object's
metadata, so a multipart object is copied onto itself with the digest added (a server-side
copy: no byte comes back through the gateway). Reads are ranged GETs on presigned URLs
(``s3_reads``), streamed in chunks of up to 1 MiB.
Nothing botocore or aiohttp raises gets past this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, NoReturn

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from gateway.archive.config import S3Config
from gateway.archive.s3_reads import PresignedReads
from gateway.archive.storage import (
    CHUNK_SIZE,
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobRead,
    ByteRange,
    LengthMismatch,
    RangeNotSatisfiable,
    StorageError,
    Stored,
    check_content_type,
    check_key,
)

# S3 wants parts of at least 5 MiB (but the last); 8 MiB keeps a 1 GiB video at 128 parts,
# far below the 10,000-part limit, with two parts (16 MiB) the most held at once.
PART_SIZE = 8 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's own limit
# One request, retries included: an 8 MiB part at 100 KiB/s, or a server-side copy of a video.
REQUEST_TIMEOUT_S = 300.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_MISSING = {"NoSuchKey", "NotFound", "404"}
_FOREIGN = (ClientError, BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def _code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "error")
    return type(exc).__name__


@contextlib.asynccontextmanager
async def _call(operation: str, key: str, timeout_s: float) -> AsyncIterator[None]:
    """One S3 request, bounded in time, its exceptions the seam's own.

    The bound matters: a server that stops reading a request body or answering would hold
    the caller for minutes at least, through the client's socket timeouts and retries. The
    message keeps the S3 error code only (never the endpoint, the bucket or a signature).
    """
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except _FOREIGN as exc:
        if _code(exc) in _MISSING:
            raise BlobNotFound(key) from exc
        raise StorageError(f"s3 {operation} {key!r} failed: {_code(exc)}") from exc


async def _parts(stream: AsyncIterator[bytes], size: int) -> AsyncIterator[tuple[io.BytesIO, bool]]:
    """The stream cut into parts of at least ``size`` bytes, each with whether it is the last.

    A full part is held back until the next chunk shows that more follows, so a blob of
    exactly one part is still recognised as a single upload. Parts are ``BytesIO``: filled
    without a copy, and sent by the HTTP client in small writes rather than handed whole to
    the socket's buffer. Two buffers take turns for the whole blob, one sent while the other
    fills: the caller asks for the next part only once the one before the last has gone, and
    a fresh buffer per part would leave the allocator a trail of freed 8 MiB blocks that the
    process's RSS keeps.
    """
    buffers = (io.BytesIO(), io.BytesIO())
    turn, part = 0, buffers[0]
    async for chunk in stream:
        if part.tell() >= size:
            yield _sealed(part), False
            turn = 1 - turn
            part = buffers[turn]
            part.seek(0)
        part.write(chunk)
        del chunk  # the chunk is in the part now; the stream may hand out the next one
    yield _sealed(part), True


def _sealed(part: io.BytesIO) -> io.BytesIO:
    """The part as filled so far, from its start (what the turn before left past it cut off)."""
    part.truncate()
    part.seek(0)
    return part


def _buffer_chunks(body: Any, chunk_size: int) -> None:
    """Let the HTTP client buffer a whole chunk or two before it stops reading the socket.

    aiohttp's default (64 KiB, paused at 128 KiB) makes the server, the gateway and its
    client take turns in small steps: a wake-up each, which on a busy machine costs more than
    the bytes. Only aiohttp's reader has the knob; another backend is left as it is.
    """
    content: Any = getattr(getattr(body, "raw_stream", None), "content", None)
    if hasattr(content, "set_read_chunk_size"):
        content.set_read_chunk_size(chunk_size)


def _hash(hasher: Any, part: io.BytesIO) -> int:
    """Adds the part to the digest (in a worker thread: hashlib lets go of the GIL)."""
    with part.getbuffer() as view:
        hasher.update(view)
        return len(view)


class S3Store:
    def __init__(self, config: S3Config, *, part_size: int = PART_SIZE,
                 chunk_size: int = CHUNK_SIZE, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE}")
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.part_size = part_size
        self.chunk_size = chunk_size
        self.timeout_s = timeout_s
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._reads = PresignedReads(self._presign_name, chunk_size=chunk_size,
                                     connections=64, read_timeout_s=min(60.0, timeout_s))

    async def _s3(self) -> Any:
        # The client is made on first use: its connection pool belongs to the running loop.
        async with self._lock:
            if self._client is None:
                config = self.config
                options = AioConfig(
                    signature_version="s3v4", s3={"addressing_style": "path"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=10, read_timeout=60, max_pool_connections=64,
                    # Many S3-compatible servers reject the newer default checksum headers.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
                self._client = await self._stack.enter_async_context(get_session().create_client(
                    "s3", endpoint_url=config.endpoint_url, region_name=config.region,
                    aws_access_key_id=config.access_key,
                    aws_secret_access_key=config.secret_key, config=options))
            return self._client

    async def aclose(self) -> None:
        await self._reads.aclose()
        async with self._lock:
            self._client = None
            await self._stack.aclose()

    def call(self, operation: str, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """The bounds and the translation every request of this store goes through."""
        return _call(operation, key, self.timeout_s)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def put(self, key: str, stream: AsyncIterator[bytes], content_type: str, *,
                  expected_size: int | None = None) -> Stored:
        name = self._name(key)
        check_content_type(content_type)
        s3, hasher = await self._s3(), hashlib.sha256()
        parts = _parts(stream, self.part_size)
        first, last = await anext(parts)
        size = await asyncio.to_thread(_hash, hasher, first)
        if last:
            self._check_length(key, expected_size, size)
            digest = hasher.hexdigest()
            async with self.call("put", key):
                await s3.put_object(Bucket=self.bucket, Key=name, Body=first,
                                    ContentType=content_type, Metadata={"sha256": digest})
            return Stored(key=key, size=size, sha256=digest)
        async with self.call("put", key):
            created = await s3.create_multipart_upload(Bucket=self.bucket, Key=name,
                                                       ContentType=content_type)
        upload = _Multipart(self, s3, name, key, created["UploadId"])
        try:
            size += await upload.send(first, parts, hasher)
            self._check_length(key, expected_size, size)
            await upload.complete()
            digest = hasher.hexdigest()
            await upload.set_metadata(content_type, {"sha256": digest})
        except BaseException:
            await upload.abandon()
            raise
        return Stored(key=key, size=size, sha256=digest)

    @staticmethod
    def _check_length(key: str, expected: int | None, actual: int) -> None:
        if expected is not None and actual != expected:
            raise LengthMismatch(key, expected, actual)

    async def stat(self, key: str) -> BlobInfo | None:
        s3 = await self._s3()
        try:
            async with self.call("stat", key):
                head = await s3.head_object(Bucket=self.bucket, Key=self._name(key))
        except BlobNotFound:
            return None
        return BlobInfo(key=key, size=head["ContentLength"], content_type=head["ContentType"],
                        last_modified=head["LastModified"], sha256=head["Metadata"].get("sha256"))

    async def open(self, key: str, byte_range: ByteRange | None = None) -> BlobRead:
        name = self._name(key)
        async with self.call("get", key):
            answer = await self._reads.get(name, byte_range.header() if byte_range else None)
        if answer is None:
            return await self._open_by_client(key, name, byte_range)
        if answer.status in (404, 416):
            answer.response.release()
            if answer.status == 404:
                raise BlobNotFound(key)
            await self._unsatisfiable(key)
        info = answer.info(key)
        found = _CONTENT_RANGE.fullmatch(answer.response.headers.get("content-range") or "")
        offset, stop = (int(found[1]), int(found[2]) + 1) if found else (0, info.size)
        content = answer.response.content
        return BlobRead(info, offset, stop, self._chunks(key, content, stop - offset),
                        _released(answer.response))

    async def _open_by_client(self, key: str, name: str,
                              byte_range: ByteRange | None) -> BlobRead:
        """A GET through the S3 client: when a presigned URL was refused, its error is ours."""
        s3 = await self._s3()
        ranged = {"Range": byte_range.header()} if byte_range else {}
        try:
            async with self.call("get", key):
                response = await s3.get_object(Bucket=self.bucket, Key=name, **ranged)
        except StorageError as exc:
            if _code(exc.__cause__ or exc) == "InvalidRange":
                await self._unsatisfiable(key)
            raise
        body = response["Body"]
        _buffer_chunks(body, self.chunk_size)
        found = _CONTENT_RANGE.fullmatch(response.get("ContentRange") or "")
        if found:
            offset, stop, size = int(found[1]), int(found[2]) + 1, int(found[3])
        else:
            size = response["ContentLength"]
            offset, stop = 0, size
        info = BlobInfo(key=key, size=size, content_type=response["ContentType"],
                        last_modified=response["LastModified"],
                        sha256=response["Metadata"].get("sha256"))
        return BlobRead(info, offset, stop, self._chunks(key, body, stop - offset), body.aclose)

    async def _unsatisfiable(self, key: str) -> NoReturn:
        info = await self.stat(key)
        if info is None:
            raise BlobNotFound(key)
        raise RangeNotSatisfiable(key, info.size)

    async def _chunks(self, key: str, body: Any, length: int) -> AsyncIterator[bytes]:
        # Each read is bounded by the HTTP client's own socket read timeout: a timer of
        # ours per chunk cost a tenth of the relay's CPU, and a stalled read fails the same.
        received = 0
        while True:
            try:
                chunk = await body.read(self.chunk_size)
            except _FOREIGN as exc:
                raise StorageError(f"s3 read {key!r} failed: {_code(exc)}") from exc
            if not chunk:
                break
            received += len(chunk)
            yield chunk
        if received != length:
            raise StorageError(f"s3 read {key!r} failed: {received} of {length} bytes")

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        async with self.call("delete", key):
            await s3.delete_object(Bucket=self.bucket, Key=self._name(key))

    async def list_blobs(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        s3 = await self._s3()
        pages = aiter(s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix))
        while True:
            async with self.call("list", prefix):
                page = await anext(pages, None)
            if page is None:
                return
            for item in page.get("Contents", []):
                yield BlobEntry(key=item["Key"][len(self.prefix):], size=item["Size"],
                                last_modified=item["LastModified"])

    async def presign(self, key: str, expires_s: int, *, head: bool = False) -> str | None:
        return await self._presign_name(self._name(key), expires_s,
                                        "head_object" if head else "get_object")

    async def _presign_name(self, name: str, expires_s: int,
                            operation: str = "get_object") -> str:
        # SigV4 signs the method: a URL presigned for GET is refused to a HEAD (403).
        if not 1 <= expires_s <= MAX_PRESIGN_S:
            raise ValueError(f"expires_s must be within 1..{MAX_PRESIGN_S}")
        s3 = await self._s3()
        async with self.call("presign", name.removeprefix(self.prefix)):
            url: str = await s3.generate_presigned_url(
                operation, Params={"Bucket": self.bucket, "Key": name},
                ExpiresIn=expires_s)
        return url


def _released(response: aiohttp.ClientResponse) -> Callable[[], Awaitable[None]]:
    async def release() -> None:
        # A body read to its end gives the connection back; one cut short closes it.
        response.release()
    return release


class _Multipart:
    """One multipart upload, from its first part to its completed object or its abort."""

    def __init__(self, store: S3Store, s3: Any, name: str, key: str, upload_id: str) -> None:
        self.s3, self.bucket, self.name, self.key = s3, store.bucket, name, key
        self.call = store.call
        self.ids = {"Bucket": store.bucket, "Key": name, "UploadId": upload_id}
        self.done: list[dict[str, Any]] = []
        self.completed = False

    async def send(self, first: io.BytesIO, rest: AsyncIterator[tuple[io.BytesIO, bool]],
                   hasher: Any) -> int:
        """Uploads every part, the next one filling while the previous one travels; returns
        the bytes after the first part (already hashed by the caller)."""
        size, in_flight = 0, asyncio.ensure_future(self._part(1, first))
        try:
            async for part, _ in rest:
                size += await asyncio.to_thread(_hash, hasher, part)
                await in_flight
                in_flight = asyncio.ensure_future(self._part(len(self.done) + 1, part))
            await in_flight
        finally:
            # The source failed: the part on its way is let finish (its request is bounded)
            # rather than cancelled. S3 may still store a part that was uploading while the
            # upload was aborted, and a request cut off mid-body can leave its connection
            # behind; waiting makes the abort that follows the last word.
            await asyncio.wait([in_flight])
            if not in_flight.cancelled():
                in_flight.exception()  # retrieved: the error that propagates is raised above
        return size

    async def _part(self, number: int, data: io.BytesIO) -> None:
        async with self.call("put", self.key):
            answer = await self.s3.upload_part(PartNumber=number, Body=data, **self.ids)
        self.done.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def complete(self) -> None:
        async with self.call("put", self.key):
            await self.s3.complete_multipart_upload(MultipartUpload={"Parts": self.done},
                                                    **self.ids)
        self.completed = True

    async def set_metadata(self, content_type: str, metadata: dict[str, str]) -> None:
        async with self.call("put", self.key):
            await self.s3.copy_object(
                Bucket=self.bucket, Key=self.name, MetadataDirective="REPLACE",
                CopySource={"Bucket": self.bucket, "Key": self.name},
                ContentType=content_type, Metadata=metadata)

    async def abandon(self) -> None:
        """Best effort: an upload that cannot be aborted now is the bucket lifecycle's to end."""
        with contextlib.suppress(StorageError):
            async with self.call("abort", self.key):
                await self._undo()

    async def _undo(self) -> None:
        if self.completed:
            await self.s3.delete_object(Bucket=self.bucket, Key=self.name)
        else:
            await self.s3.abort_multipart_upload(**self.ids)
