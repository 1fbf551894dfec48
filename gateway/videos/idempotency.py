"""Idempotency-Key on the video writes (create, remix, edits, extensions), as Stripe has it.

A key names one request of one token for 24 hours, and a repeat of that request gets the
first job back. The key is bound to a fingerprint of the request it came with (route and
parsed parameters): sent with another request it is refused, never answered with a job the
client did not ask for. A request that started no upstream job (every upstream refused it
or could not be reached; its hold was released) gives its key back, so a retry of a 502 with
the same key can still make the video. One whose upstream may have started a job keeps it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db import now
from gateway.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from gateway.upstreams.base import VideoUpload
from gateway.videos.inputs import CreateParams
from gateway.videos.models import Job
from gateway.videos.repository import JobRepository

WINDOW_S = 24 * 3600
# A create is written and submitted in about a second; the SDK waits this long, then repeats.
IN_USE_RETRY_AFTER_S = 1
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: str


def fingerprint(route: str, **parameters: object) -> str:
    """sha256 over the route and the parameters as parsed (JSON-able values)."""
    canonical = json.dumps({"route": route, "parameters": parameters}, sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def for_create(key: str | None, params: CreateParams) -> Idempotency | None:
    if key is None:
        return None
    image = bytes_digest(params.image.data) if params.image else None
    return Idempotency(key, fingerprint(
        "create", model=params.model, size=params.size, seconds=params.seconds,
        prompt=params.prompt, metadata=metadata_value(params.metadata), image=image,
        image_reference=params.image_reference,
    ))


def for_remix(key: str | None, source_id: str, prompt: str) -> Idempotency | None:
    return None if key is None else Idempotency(
        key, fingerprint("remix", video_id=source_id, prompt=prompt))


async def for_derive(key: str | None, kind: str, *, source_id: str | None,
                     upload: VideoUpload | None, model: str, size: str, seconds: int,
                     prompt: str) -> Idempotency | None:
    """An edit's or extension's; an uploaded source video counts by its bytes' digest."""
    if key is None:
        return None
    # Off the event loop: an upload may be as large as max_upload_mb.
    video = await asyncio.to_thread(file_digest, upload.file) if upload else None
    return Idempotency(key, fingerprint(kind, video_id=source_id, video=video, model=model,
                                        size=size, seconds=seconds, prompt=prompt))


def metadata_value(metadata: str | None) -> object:
    """Metadata as the object it encodes, so spacing and key order don't change the request."""
    return None if metadata is None else json.loads(metadata)


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(file: BinaryIO) -> str:
    """sha256 of a whole uploaded file, read from its start and left rewound."""
    file.seek(0)
    digest = hashlib.sha256()
    for chunk in _chunks(file):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def _chunks(file: BinaryIO) -> Iterable[bytes]:
    while chunk := file.read(_CHUNK):
        yield chunk


def check_repeat(earlier: Job, idempotency: Idempotency) -> Job:
    """The first job of this key, if this request may have it back; else why not."""
    # A null fingerprint is a job written before fingerprints were kept: no way to compare.
    if earlier.idempotency_fingerprint not in (None, idempotency.fingerprint):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request; use a new key "
            "for a new request."
        )
    if earlier.status == "submitting":
        raise in_use()
    return earlier


def in_use() -> IdempotencyKeyInUse:
    return IdempotencyKeyInUse(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        retry_after=IN_USE_RETRY_AFTER_S,
    )


async def earlier_job(sessions: async_sessionmaker[AsyncSession], token_id: str,
                      idempotency: Idempotency) -> Job | None:
    """The job this key already made, within the window, checked against this request."""
    async with sessions() as session, session.begin():
        repo = JobRepository(session)
        earlier = await repo.by_idempotency_key(token_id, idempotency.key)
        if earlier is None:
            return None
        if now() - earlier.created_at > WINDOW_S:
            await repo.forget_idempotency_key(earlier.id)
            return None
    return check_repeat(earlier, idempotency)
