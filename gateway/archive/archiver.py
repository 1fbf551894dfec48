"""Copying each completed job's assets into the archive, driven by the reconciler.

A completed job is written ``pending`` in the transaction that captures it; from then on the
database alone says what is left to do. Each tick the reconciler asks for the jobs due a try:
they are leased (a guarded UPDATE, so two processes never copy one job), copied, and marked
``stored``, or tried again later with a growing delay until the upstream's links expire, when
the job is marked ``failed``, counted and logged for the operator. A crash or a restart loses
nothing: a dead process's leases lapse and the jobs are claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.archive import policy
from gateway.archive.repository import ArchiveRepository
from gateway.archive.storage import CHUNK_SIZE, BlobStore, StorageError, Stored
from gateway.config import Settings
from gateway.db import now
from gateway.metrics import ARCHIVE_FAILURES, ARCHIVE_RETRIES, ARCHIVED_VIDEOS
from gateway.upstreams.base import UpstreamError, UpstreamGone
from gateway.upstreams.pool import UpstreamPool
from gateway.videos.models import Job
from gateway.videos.repository import JobRepository

log = logging.getLogger("gateway.archive")

SWEEP_BATCH = 200


class CopyFailed(Exception):
    """This try did not keep the video; the message names no vendor detail."""


class Archiver:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession],
                 pool: UpstreamPool, store: BlobStore, owner: str,
                 on_changed: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.config = settings.archive
        self.sessions = sessions
        self.pool = pool
        self.store = store
        self.owner = owner
        self.on_changed = on_changed or (lambda _job_id: None)
        self.lease_s = settings.jobs.lease_s
        self._tasks: set[asyncio.Task[None]] = set()

    # -- driven by the reconciler ------------------------------------------------------------
    async def run_due(self) -> int:
        """Claim as many due jobs as there are free copy slots and start copying them."""
        free = self.config.concurrency - len(self._tasks)
        if free <= 0:
            return 0
        at = now()
        async with self.sessions() as session, session.begin():
            jobs = await ArchiveRepository(session).claim_due(self.owner, at,
                                                              at + self.lease_s, free)
        for job in jobs:
            task = asyncio.create_task(self.archive(job), name=f"archive {job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(jobs)

    async def wait_idle(self) -> None:
        """Until every copy started so far has ended (for tools and tests)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Abandon copies in flight: their leases lapse and another try picks them up."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one job -----------------------------------------------------------------------------
    async def archive(self, job: Job) -> None:
        """Copy a leased job's assets and record what became of the try."""
        renewing = asyncio.create_task(self._renew(job.id))
        try:
            await self._copy_all(job)
        except (CopyFailed, UpstreamError, StorageError, OSError) as exc:
            await self._failed_try(job, type(exc).__name__)
        except Exception:
            log.exception("archiving failed unexpectedly", extra={"job_id": job.id})
            await self._failed_try(job, "unexpected")
        else:
            await self._stored(job)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self, job_id: str) -> None:
        """Keep the lease while a long copy runs, so no other process starts it over."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            with contextlib.suppress(Exception):  # a missed renewal only risks a second copy
                async with self.sessions() as session, session.begin():
                    await ArchiveRepository(session).renew(job_id, self.owner,
                                                           now() + self.lease_s)

    async def _copy_all(self, job: Job) -> None:
        async with self.sessions() as session:
            kept = await ArchiveRepository(session).kept(job.id)
        offered = job.archive_assets or {policy.REQUIRED: job.content_url}
        for variant, url in offered.items():
            if variant in kept or variant not in policy.VARIANTS:
                continue  # kept by an earlier try
            stored = await self._copy(job, variant, url)
            if stored is None:
                continue
            stored_copy, content_type = stored
            async with self.sessions() as session, session.begin():
                await ArchiveRepository(session).record_asset(job.id, variant, stored_copy,
                                                              content_type, now())

    async def _copy(self, job: Job, variant: str,
                    url: str | None) -> tuple[Stored, str] | None:
        """Stream one asset from the upstream into the store; None when the upstream no
        longer has a picture it offered (it is simply not kept)."""
        if variant == policy.REQUIRED and (legacy := self._legacy_copy(job)) is not None:
            content_type = policy.media_type(None, variant)
            key = policy.asset_key(job.id, variant, content_type)
            return await self.store.put(key, _read(legacy), content_type,
                                        expected_size=legacy.stat().st_size), content_type
        if job.upstream is None or job.upstream_id is None:
            raise CopyFailed("the job has no upstream")
        placement = self.pool.placement(job.upstream, job.upstream_key_index)
        flavor = self.pool.flavor(job.upstream)
        try:
            async with flavor.content(job.upstream_id, job.poll_state or {}, placement.key,
                                      variant=variant, url=url, range_header=None) as stream:
                if stream.status != 200:
                    raise CopyFailed(f"the upstream answered {stream.status}")
                content_type = policy.media_type(stream.content_type, variant)
                key = policy.asset_key(job.id, variant, content_type)
                stored = await self.store.put(key, stream.chunks, content_type,
                                              expected_size=stream.content_length)
        except UpstreamGone:
            if variant == policy.REQUIRED:
                raise
            return None
        return stored, content_type

    def _legacy_copy(self, job: Job) -> Path | None:
        """The copy the archive's predecessor took of this job's video, if it is still there."""
        if not job.content_file:
            return None
        path = self.settings.legacy_content_dir / job.content_file
        return path if path.is_file() else None

    async def _stored(self, job: Job) -> None:
        at = now()
        until = policy.retain_until(at, self.settings.retention_days(job.group))
        async with self.sessions() as session, session.begin():
            marked = await ArchiveRepository(session).mark_stored(job.id, self.owner, at, until)
        if not marked:
            # Deleted while it was copied (its blobs must not outlive it), or the lease lapsed
            # and another process took over: that one records the outcome.
            await self._drop_if_deleted(job.id)
            return
        ARCHIVED_VIDEOS.labels("stored").inc()
        self.on_changed(job.id)
        log.info("video archived", extra={"job_id": job.id})

    async def _failed_try(self, job: Job, reason: str) -> None:
        at = now()
        attempts = job.archive_attempts + 1
        until = job.archive_deadline if job.archive_deadline is not None else at
        retry_at = policy.next_attempt(attempts, at, until, first_s=self.config.retry_after_s,
                                       max_s=self.config.retry_max_s)
        async with self.sessions() as session, session.begin():
            marked = await ArchiveRepository(session).mark_failed_try(job.id, self.owner,
                                                                      attempts, retry_at, at)
        if not marked:
            return
        if retry_at is not None:
            ARCHIVE_RETRIES.inc()
            log.info("archiving will be retried",
                     extra={"job_id": job.id, "attempts": attempts, "reason": reason})
            return
        ARCHIVED_VIDEOS.labels("failed").inc()
        ARCHIVE_FAILURES.inc()
        self.on_changed(job.id)
        log.warning("video could not be archived before its upstream link expired",
                    extra={"job_id": job.id, "attempts": attempts})

    # -- removal -----------------------------------------------------------------------------
    async def remove(self, job_id: str) -> None:
        """Delete a job's blobs and their rows (the video was deleted, or its time is up)."""
        async with self.sessions() as session:
            kept = await ArchiveRepository(session).kept(job_id)
        for asset in kept.values():
            await self.store.delete(asset.key)
        async with self.sessions() as session, session.begin():
            await ArchiveRepository(session).forget(job_id)

    async def _drop_if_deleted(self, job_id: str) -> None:
        async with self.sessions() as session:
            job = await JobRepository(session).get(job_id)
        if job is not None and job.deleted_at is not None:
            await self.remove(job_id)

    async def sweep(self, at: float | None = None) -> int:
        """Delete what is past its retention; returns how many videos expired."""
        at = now() if at is None else at
        async with self.sessions() as session:
            due = await ArchiveRepository(session).past_retention(at, SWEEP_BATCH)
        for job_id in due:
            try:
                await self.remove(job_id)
            except StorageError:
                log.warning("an expired video's blobs could not be deleted",
                            extra={"job_id": job_id})
                continue
            async with self.sessions() as session, session.begin():
                await ArchiveRepository(session).mark_expired(job_id, at)
            self.on_changed(job_id)
        if due:
            log.info("archive swept", extra={"expired": len(due)})
        return len(due)


async def _read(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as file:
        while chunk := await file.read(CHUNK_SIZE):
            yield chunk
