"""The gateway's own copy of each finished video.

Upstream download links expire (often within an hour); a copy taken when the job completes
keeps the video downloadable for ``content_store.retention_s``. The copy is streamed to disk
chunk by chunk and renamed into place only when whole, so a half-written file is never served.
When the copy is missing (not taken yet, failed, or on another replica's disk), content is
streamed from the upstream as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import ContentStoreConfig
from gateway.metrics import STORED_VIDEOS
from gateway.upstreams.base import UpstreamError
from gateway.upstreams.pool import UpstreamPool
from gateway.videos.models import Job
from gateway.videos.repository import JobRepository

log = logging.getLogger("gateway.store")

PARTIAL_SUFFIX = ".part"
STALE_PARTIAL_S = 3600.0


class ContentStore:
    def __init__(self, config: ContentStoreConfig, sessions: async_sessionmaker[AsyncSession],
                 pool: UpstreamPool) -> None:
        self.enabled = config.enabled
        self.dir = Path(config.dir).resolve()
        self.retention_s = config.retention_s
        self.sessions = sessions
        self.pool = pool
        self._tasks: set[asyncio.Task[None]] = set()
        if self.enabled:
            self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, job: Job) -> Path | None:
        if not self.enabled or not job.content_file:
            return None
        path = self.dir / job.content_file
        return path if path.is_file() else None

    def keep(self, job_id: str) -> None:
        """Start copying a completed job's video in the background."""
        if self.enabled:
            task = asyncio.create_task(self._copy(job_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def remove(self, job: Job) -> None:
        if self.enabled and job.content_file:
            (self.dir / job.content_file).unlink(missing_ok=True)

    async def _copy(self, job_id: str) -> None:
        async with self.sessions() as session:
            job = await JobRepository(session).get(job_id)
        if job is None or job.upstream is None or job.upstream_id is None:
            return
        if job.deleted_at is not None:  # a job deleted as it completed: nobody will ask
            return
        name = f"{job.id}.mp4"
        partial = self.dir / (name + PARTIAL_SUFFIX)
        try:
            size = await self._download(job, partial)
        except (UpstreamError, OSError) as exc:
            partial.unlink(missing_ok=True)
            STORED_VIDEOS.labels("failed").inc()
            log.warning("could not store video", extra={"job_id": job.id, "reason": str(exc)})
            return
        os.replace(partial, self.dir / name)
        async with self.sessions() as session, session.begin():
            await JobRepository(session).update(job.id, content_file=name)
        STORED_VIDEOS.labels("stored").inc()
        log.info("video stored", extra={"job_id": job.id, "bytes": size})

    async def _download(self, job: Job, partial: Path) -> int:
        assert job.upstream is not None
        assert job.upstream_id is not None
        placement = self.pool.placement(job.upstream, job.upstream_key_index)
        flavor = self.pool.flavor(job.upstream)
        size = 0
        async with flavor.content(job.upstream_id, job.poll_state or {}, placement.key,
                                  variant="video", url=job.content_url,
                                  range_header=None) as stream:
            if stream.status != 200:
                raise UpstreamError(f"upstream answered {stream.status}")
            with partial.open("wb") as out:
                async for chunk in stream.chunks:
                    # Disk writes of one chunk are short; a thread hop per chunk would cost more.
                    out.write(chunk)
                    size += len(chunk)
        return size

    def sweep(self, at: float | None = None) -> int:
        """Delete copies past their retention and partial files left by a crash."""
        if not self.enabled:
            return 0
        at = time.time() if at is None else at
        removed = 0
        for path in self.dir.iterdir():
            age = at - path.stat().st_mtime
            limit = STALE_PARTIAL_S if path.name.endswith(PARTIAL_SUFFIX) else self.retention_s
            if age > limit:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
