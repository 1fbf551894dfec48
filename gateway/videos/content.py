"""A finished video's assets: from the archive once stored, else streamed from its upstream
chunk by chunk, with Range."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.archive import serving as archived
from gateway.archive.policy import VARIANTS, media_type
from gateway.archive.repository import EXPIRED, STORED
from gateway.archive.storage import ByteRange as BlobRange
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    RangeNotSatisfiable,
    unsatisfiable,
)
from gateway.upstreams.base import UpstreamError, UpstreamGone
from gateway.upstreams.flavor import ContentStream
from gateway.videos.deps import VideoDeps
from gateway.videos.models import Job

log = logging.getLogger("gateway.content")

# Once stored, a job's content comes from the archive only (an expired one is gone).
ARCHIVED = (STORED, EXPIRED)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    """A single ``bytes=a-b`` request, applied here when an upstream ignores Range."""

    start: int | None
    end: int | None

    @classmethod
    def parse(cls, header: str | None) -> ByteRange | None:
        match = _RANGE.match((header or "").strip())
        if not match or match.groups() == ("", ""):
            return None
        first, last = (int(group) if group else None for group in match.groups())
        return cls(first, last)

    def blob_range(self) -> BlobRange:
        """The same range, as the archive's store reads it."""
        if self.start is None:
            if not self.end:  # "bytes=-0": no byte at all
                raise unsatisfiable(None)
            return BlobRange.last(self.end)
        if self.end is not None and self.end < self.start:
            raise unsatisfiable(None)
        return BlobRange(self.start, self.end)

    def bounds(self, total: int) -> tuple[int, int]:
        """Inclusive byte positions within an asset of ``total`` bytes."""
        if self.start is None:
            start, end = max(0, total - (self.end or 0)), total - 1
        else:
            start, end = self.start, min(total - 1, self.end if self.end is not None else total)
        if start > end or start >= total:
            raise unsatisfiable(f"bytes */{total}")
        return start, end


async def _slice(chunks: AsyncGenerator[bytes, None], start: int,
                 end: int) -> AsyncIterator[bytes]:
    position = 0
    try:
        async for chunk in chunks:
            lo, hi = max(start - position, 0), min(end + 1 - position, len(chunk))
            position += len(chunk)
            if lo < hi:
                yield chunk[lo:hi]
            if position > end:
                return
    finally:
        await chunks.aclose()


async def _relay(stream: ContentStream, stack: AsyncExitStack,
                 job_id: str) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in stream.chunks:
            yield chunk
    except UpstreamError as exc:
        # Headers are gone already; cutting the body short tells the client it is incomplete.
        log.warning("content stream broke", extra={"job_id": job_id, "reason": str(exc)})
    finally:
        await stack.aclose()


@dataclass(frozen=True)
class ContentAsk:
    """One content request as every content route reads it: the API's, a signed link's and
    the console's answer the same headers the same way."""

    variant: str
    range_header: str | None = None
    if_none_match: str | None = None
    if_range: str | None = None
    head: bool = False

    @classmethod
    def of(cls, request: Request, variant: str) -> ContentAsk:
        headers = request.headers
        return cls(variant, headers.get("range"), headers.get("if-none-match"),
                   headers.get("if-range"), request.method == "HEAD")


def _conditions(ask: ContentAsk, wanted: ByteRange | None) -> archived.Conditions:
    return archived.Conditions(wanted.blob_range() if wanted is not None else None,
                               ask.if_none_match, ask.if_range, ask.head)


async def stream_content(ctx: VideoDeps, job: Job, ask: ContentAsk) -> Response:
    variant = ask.variant
    if variant not in VARIANTS:
        raise InvalidRequest("'variant' must be video, thumbnail or spritesheet.",
                             param="variant")
    # A Range that is not one "bytes=a-b" is ignored, as RFC 9110 asks: the whole asset.
    wanted = ByteRange.parse(ask.range_header)
    if job.archive_state in ARCHIVED:
        return await archived.serve(ctx.archive, job, variant, _conditions(ask, wanted))
    return await _from_upstream(ctx, job, ask, wanted)


async def _from_upstream(ctx: VideoDeps, job: Job, ask: ContentAsk,
                         wanted: ByteRange | None) -> Response:
    variant = ask.variant
    assert job.upstream is not None
    assert job.upstream_id is not None
    placement = ctx.pool.placement(job.upstream, job.upstream_key_index)
    stack = AsyncExitStack()
    try:
        response = await stack.enter_async_context(ctx.pool.flavor(job.upstream).content(
            job.upstream_id, job.poll_state or {}, placement.key, variant=variant,
            url=job.content_url if variant == "video" else None,
            # Under If-Range the whole is asked for: which copy it is shows only in its answer.
            range_header=ask.range_header if wanted and ask.if_range is None else None,
        ))
    except UpstreamGone as exc:
        await stack.aclose()
        raise NotFound(f"The {variant} of video '{job.id}' is no longer available.",
                       param="variant") from exc
    except UpstreamError as exc:
        await stack.aclose()
        raise GatewayError("The upstream provider could not serve the content.",
                           code="upstream_error", status=502) from exc
    if response.status == 416:
        await stack.aclose()
        raise unsatisfiable(response.content_range)
    return await _answer(response, stack, job.id, ask, wanted)


async def _answer(response: ContentStream, stack: AsyncExitStack, job_id: str,
                  ask: ContentAsk, wanted: ByteRange | None) -> Response:
    """The upstream's answer as the client's, a Range it ignored applied here."""
    headers = {"accept-ranges": "bytes"}
    if response.content_length is not None:
        headers["content-length"] = str(response.content_length)
    for name, value in (("content-range", response.content_range), ("etag", response.etag),
                        ("last-modified", response.last_modified)):
        if value:
            headers[name] = value
    status, sliced = response.status, None
    if wanted is not None and status == 200 and "content-length" in headers \
            and archived.range_applies(ask.if_range, response.etag,
                                          response.last_modified):
        total = int(headers["content-length"])
        try:
            sliced = wanted.bounds(total)
        except RangeNotSatisfiable:
            await stack.aclose()
            raise
        headers.update({"content-length": str(sliced[1] - sliced[0] + 1),
                        "content-range": f"bytes {sliced[0]}-{sliced[1]}/{total}"})
        status = 206
    content_type = media_type(response.content_type, ask.variant)
    if ask.head:
        await stack.aclose()
        return Response(status_code=status, headers=headers, media_type=content_type)
    relay = _relay(response, stack, job_id)
    body = relay if sliced is None else _slice(relay, *sliced)
    return StreamingResponse(body, status_code=status, headers=headers, media_type=content_type)
