"""Waiting for a job's next change, for callers that hold a connection open on it.

However many callers wait on one job, one driver task follows it: it re-reads the stored
job when the tracker says it changed in this process, and at least every ``reread_s`` (a
job another process polls or settles changes only in the database), and refreshes it from
its upstream through the tracker's single flight once the stored state is older than
``refresh_after_s``, exactly as a client's retrieve would. Waiters only read what the driver
last saw. The driver is stopped, and the job's state dropped, when its last waiter leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db import now
from gateway.metrics import WATCHED_JOBS
from gateway.videos.models import UNFINISHED, Job
from gateway.videos.repository import JobRepository

log = logging.getLogger("gateway.jobs")

Load = Callable[[str], Awaitable[Job | None]]
Refresh = Callable[[str], Awaitable[object]]

# However fresh the operator lets retrieves be, a driver does not poll faster than this.
MIN_REFRESH_S = 0.1


def _state(job: Job | None) -> tuple[str, int, bool] | None:
    return None if job is None else (job.status, job.progress, job.deleted_at is not None)


def settled(job: Job | None) -> bool:
    return job is None or job.status not in UNFINISHED or job.deleted_at is not None


@dataclass(eq=False)
class _Watch:
    waiters: int = 0
    loaded: bool = False
    job: Job | None = None
    # Replaced each time ``job`` is: a waiter holds the one that was current when it looked.
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by the tracker's word that the job changed: the driver reads it again at once.
    nudge: asyncio.Event = field(default_factory=asyncio.Event)
    driver: asyncio.Task[None] | None = None

    def publish(self, job: Job | None) -> None:
        if self.loaded and _state(job) == _state(self.job):
            return
        self.loaded, self.job = True, job
        self.changed.set()
        self.changed = asyncio.Event()


class JobChanges:
    def __init__(self, load: Load, refresh: Refresh, *, refresh_after_s: float,
                 reread_s: float) -> None:
        self._load = load
        self._refresh = refresh
        self.refresh_after_s = max(refresh_after_s, MIN_REFRESH_S)
        self.reread_s = reread_s
        self._watches: dict[str, _Watch] = {}

    @classmethod
    def of_database(cls, sessions: async_sessionmaker[AsyncSession], refresh: Refresh, *,
                    refresh_after_s: float, reread_s: float) -> JobChanges:
        async def load(job_id: str) -> Job | None:
            async with sessions() as session:
                return await JobRepository(session).get(job_id)

        return cls(load, refresh, refresh_after_s=refresh_after_s, reread_s=reread_s)

    @property
    def watched(self) -> int:
        """How many jobs have a waiter now."""
        return len(self._watches)

    def notify(self, job_id: str) -> None:
        """The tracker's hook: the job's stored state changed in this process."""
        watch = self._watches.get(job_id)
        if watch is not None:
            watch.nudge.set()

    async def next_change(self, job_id: str, timeout: float,
                          seen: Job | None = None) -> Job | None:
        """The job as stored once its status or progress differs from ``seen``'s (at once if
        it already does, or if ``seen`` is None), else as it stands after ``timeout`` seconds.
        None if there is no such job."""
        watch = self._join(job_id)
        try:
            return await self._wait(watch, timeout, seen)
        finally:
            self._leave(job_id, watch)

    async def _wait(self, watch: _Watch, timeout: float, seen: Job | None) -> Job | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not watch.loaded or (
                        watch.job is not None and seen is not None
                        and _state(watch.job) == _state(seen)):
                    await watch.changed.wait()
        return watch.job if watch.loaded else seen

    def _join(self, job_id: str) -> _Watch:
        watch = self._watches.get(job_id)
        if watch is None:
            watch = self._watches[job_id] = _Watch()
            watch.driver = asyncio.create_task(self._drive(job_id, watch),
                                               name=f"watch {job_id}")
            WATCHED_JOBS.set(len(self._watches))
        watch.waiters += 1
        return watch

    def _leave(self, job_id: str, watch: _Watch) -> None:
        watch.waiters -= 1
        if watch.waiters == 0:
            del self._watches[job_id]
            WATCHED_JOBS.set(len(self._watches))
            # A refresh it started goes on (the tracker shields it): only the waiting stops.
            assert watch.driver is not None
            watch.driver.cancel()

    async def _drive(self, job_id: str, watch: _Watch) -> None:
        while True:
            watch.nudge.clear()
            try:
                job = await self._load(job_id)
                watch.publish(job)
                if settled(job):
                    return
                assert job is not None
                pause = await self._refresh_if_due(job)
            except Exception:  # a database hiccup: the waiters keep what they saw, and wait
                log.exception("reading a watched job failed", extra={"job_id": job_id})
                pause = self.reread_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(pause, self.reread_s)):
                    await watch.nudge.wait()

    async def _refresh_if_due(self, job: Job) -> float:
        """Refresh a stale job from its upstream; how long until it is due again."""
        due_in = job.polled_at + self.refresh_after_s - now()
        if due_in > 0:
            return due_in
        # Shared with every other caller refreshing this job; the tracker's notice of what
        # it learned nudges this driver to read it.
        await self._refresh(job.id)
        return self.refresh_after_s

    async def close(self) -> None:
        """Stop every driver (the process is shutting down)."""
        drivers = [watch.driver for watch in self._watches.values() if watch.driver]
        self._watches.clear()
        WATCHED_JOBS.set(0)
        for driver in drivers:
            driver.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
