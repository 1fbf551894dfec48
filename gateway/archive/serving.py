"""Content served from the archive: ranges, validators, the stored type, or a redirect.

Once a job's assets are stored the upstream is never asked again: its links may be dead,
and the archive's copy is the one whose length and sha256 were checked.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate

from starlette.responses import RedirectResponse, Response, StreamingResponse

from gateway.archive.archiver import Archiver
from gateway.archive.models import ArchivedAsset
from gateway.archive.repository import EXPIRED, ArchiveRepository
from gateway.archive.storage import BlobNotFound, BlobRead, ByteRange, RangeNotSatisfiable
from gateway.db import now
from gateway.errors import NotFound, unsatisfiable
from gateway.videos.models import Job

log = logging.getLogger("gateway.archive")


@dataclass(frozen=True)
class Conditions:
    """What a request asks of a stored asset beyond the asset itself (RFC 9110 §13, §14)."""

    wanted: ByteRange | None = None
    if_none_match: str | None = None
    if_range: str | None = None
    head: bool = False  # the headers a GET would get, and not one byte read from the store


def expired(job: Job, at: float) -> bool:
    return job.archive_state == EXPIRED or (job.retain_until is not None
                                            and job.retain_until <= at)


def etag_of(asset: ArchivedAsset) -> str:
    return f'"{asset.sha256}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison, as If-None-Match asks: any listed tag, or ``*``."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def range_applies(if_range: str | None, etag: str | None, last_modified: str | None) -> bool:
    """Whether the client's copy is still this one, so a Range may continue it (If-Range,
    RFC 9110 §13.1.5): the validator must be a strong entity tag equal to this one's, or a
    date that is exactly the Last-Modified sent. Anything else gets the whole asset."""
    if if_range is None:
        return True
    return if_range.strip() in {value for value in (etag, last_modified)
                                if value and not value.startswith("W/")}


def _validators(asset: ArchivedAsset) -> dict[str, str]:
    return {"etag": etag_of(asset), "last-modified": formatdate(asset.stored_at, usegmt=True),
            "accept-ranges": "bytes", "cache-control": "private"}


async def _relay(blob: BlobRead) -> AsyncIterator[bytes]:
    try:
        async for chunk in blob:
            yield chunk
    finally:
        await blob.aclose()


async def serve(archiver: Archiver, job: Job, variant: str, asks: Conditions) -> Response:
    """The stored asset, as the content route answers it."""
    if expired(job, now()):
        until = datetime.fromtimestamp(job.retain_until or now(), UTC)
        raise NotFound(f"Video '{job.id}' has expired: it was kept until "
                       f"{until:%Y-%m-%dT%H:%M:%SZ}.", param="video_id")
    async with archiver.sessions() as session:
        asset = await ArchiveRepository(session).asset(job.id, variant)
    if asset is None:
        raise NotFound(f"Video '{job.id}' has no {variant}.", param="variant")
    headers = _validators(asset)
    if matches(asks.if_none_match, headers["etag"]):
        return Response(status_code=304, headers=headers)
    if archiver.config.redirect:
        url = await archiver.store.presign(asset.key, archiver.config.redirect_expires_s,
                                           head=asks.head)
        if url is not None:
            return RedirectResponse(url, status_code=302, headers=headers)
    same = range_applies(asks.if_range, headers["etag"], headers["last-modified"])
    wanted = asks.wanted if same else None
    if asks.head:
        return await _head(archiver, asset, wanted, headers)
    return await _stream(archiver, asset, wanted, headers)


async def _head(archiver: Archiver, asset: ArchivedAsset, wanted: ByteRange | None,
                headers: dict[str, str]) -> Response:
    """The headers a GET would get, the store asked only whether the blob is there (a stat,
    not one byte read): the row alone would answer 200 for a blob a GET finds gone."""
    info = await archiver.store.stat(asset.key)
    if info is None:
        raise _missing(asset)
    offset, stop = 0, info.size
    if wanted is not None:
        try:
            offset, stop = wanted.resolve(asset.key, info.size)
        except RangeNotSatisfiable as exc:
            raise unsatisfiable(f"bytes */{exc.size}") from exc
        headers["content-range"] = f"bytes {offset}-{stop - 1}/{info.size}"
    headers["content-length"] = str(stop - offset)
    return Response(status_code=206 if wanted else 200, headers=headers,
                    media_type=asset.content_type)


def _missing(asset: ArchivedAsset) -> NotFound:
    # The row says stored, the store has nothing: someone removed it behind our back.
    log.warning("archived blob missing", extra={"job_id": asset.job_id,
                                                "variant": asset.variant})
    return NotFound(f"Video '{asset.job_id}' has no {asset.variant}.", param="variant")


async def _stream(archiver: Archiver, asset: ArchivedAsset, wanted: ByteRange | None,
                  headers: dict[str, str]) -> Response:
    try:
        blob = await archiver.store.open(asset.key, wanted)
    except RangeNotSatisfiable as exc:
        raise unsatisfiable(f"bytes */{exc.size}") from exc
    except BlobNotFound as exc:
        raise _missing(asset) from exc
    headers["content-length"] = str(blob.length)
    if wanted is not None:
        headers["content-range"] = f"bytes {blob.offset}-{blob.stop - 1}/{blob.info.size}"
    return StreamingResponse(_relay(blob), status_code=206 if wanted else 200,
                             headers=headers, media_type=asset.content_type)
