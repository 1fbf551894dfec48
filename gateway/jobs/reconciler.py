"""Background polling of every unfinished job, so money settles without any client polling.

Work is claimed through the database (a lease per job), so any number of gateway processes
share the polling, none polls a job another holds, and a dead process's jobs are taken over
once its leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from gateway.archive.archiver import Archiver
from gateway.db import now
from gateway.jobs.peers import Peers
from gateway.jobs.tracker import JobTracker
from gateway.metrics import PROCESSES
from gateway.videos.models import Job
from gateway.videos.repository import JobRepository

log = logging.getLogger("gateway.reconciler")

BATCH = 200
# Batches polled at once: while one waits on upstreams, the next is claimed and sent. The
# per-upstream cap (jobs.poll_concurrency) still bounds what each upstream sees.
BATCHES_IN_FLIGHT = 4
# How often a process reports itself and recounts the others (a write each time): a short
# poll interval ticks the loop ten times a second, which the count does not need.
BEAT_EVERY_S = 1.0


class Reconciler:
    def __init__(self, tracker: JobTracker, archive: Archiver | None = None) -> None:
        self.tracker = tracker
        self.archive = archive
        self.settings = tracker.settings
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        self.peers = Peers(tracker.engine, tracker.owner)
        self.last_cycle_at: float | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for batch in list(self._batches):
            batch.cancel()
        await asyncio.gather(*self._batches, return_exceptions=True)
        if self._task is not None:
            try:
                await self.peers.leave()
            except Exception:  # the others drop this process once it goes stale
                log.exception("could not leave the process list")

    @property
    def tick_s(self) -> float:
        return min(1.0, self.settings.jobs.poll_interval_s / 2)

    async def _run(self) -> None:
        swept_at = beat_at = 0.0
        while True:
            try:
                if now() - beat_at >= BEAT_EVERY_S:
                    beat_at = now()
                    processes = await self.peers.beat()
                    PROCESSES.set(processes)
                    self.tracker.share_polls(processes)
                while await self._start_batch() >= BATCH:
                    pass
            except Exception:
                log.exception("reconciler cycle failed")
            if self.archive is not None:
                swept_at = await self._archive(swept_at)
            self.last_cycle_at = now()
            await asyncio.sleep(self.tick_s)

    async def _archive(self, swept_at: float) -> float:
        """Start copying the videos due a try; sweep retention now and then. Returns when the
        last sweep ran. Neither waits on a copy: archiving never holds up polling."""
        assert self.archive is not None
        try:
            await self.archive.run_due()
            if now() - swept_at > self.archive.config.sweep_every_s:
                swept_at = now()
                await self.archive.sweep()
        except Exception:
            log.exception("archive cycle failed")
        return swept_at

    async def _start_batch(self) -> int:
        """Claim a batch of due jobs and start polling it; returns how many were claimed."""
        await self._slots.acquire()
        try:
            claimed = await self._claim()
        except BaseException:
            self._slots.release()
            raise
        if not claimed:
            self._slots.release()
            return 0
        task = asyncio.create_task(self._poll(claimed))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)
        return len(claimed)

    async def _claim(self) -> Sequence[Job]:
        at = now()
        jobs_cfg = self.settings.jobs
        async with self.tracker.sessions() as session, session.begin():
            repo = JobRepository(session)
            due = await repo.due(polled_before=at - jobs_cfg.poll_interval_s, at=at, limit=BATCH)
            return await repo.claim_batch(due, self.tracker.owner, at, at + jobs_cfg.lease_s)

    async def _poll(self, jobs: Sequence[Job]) -> None:
        try:
            await self.tracker.poll_batch(jobs)
        except Exception:
            log.exception("polling a batch failed")
        finally:
            self._slots.release()
