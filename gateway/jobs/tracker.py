"""Following a job on its upstream and settling its money when it ends.

Shared by client retrieves and the background reconciler. A job is polled by one caller at a
time: in-process callers share one in-flight refresh, and across processes the job's lease
(a guarded UPDATE) decides who polls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.cache import SingleFlight
from gateway.config import Settings
from gateway.db import now, transact
from gateway.ledger import service as ledger
from gateway.metrics import POLL_FAILURES, record_settlement
from gateway.upstreams.base import UpstreamError, UpstreamJob
from gateway.upstreams.pool import UpstreamPool
from gateway.videos import repository as job_rows
from gateway.videos.models import UNFINISHED, Job
from gateway.videos.repository import JobRepository
from gateway.webhooks import outbox

log = logging.getLogger("gateway.jobs")


@dataclass(frozen=True)
class Ending:
    status: str
    code: str
    message: str


EXPIRED = Ending("failed", "expired",
                 "The job did not finish in the time allowed; its charge was refunded.")
LOST = Ending("failed", "submission_lost",
              "The job could not be submitted to a provider; its charge was refunded.")
DELETED = Ending("failed", "deleted", "The job was deleted before it finished.")


# What _fetch answers when the upstream could not be asked: the job is simply polled later.
POLL_FAILED = object()
# How often refresh_now looks again while another process holds the job's lease.
LEASE_WAIT_S = 0.1


def _unchanged(job: Job, result: UpstreamJob) -> bool:
    return (result.status == job.status and result.progress == job.progress
            and result.content_url in (None, job.content_url))


class JobTracker:
    def __init__(self, settings: Settings, engine: AsyncEngine,
                 sessions: async_sessionmaker[AsyncSession], pool: UpstreamPool, owner: str,
                 on_completed: Callable[[str], None] | None = None,
                 on_changed: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.on_completed = on_completed
        self.on_changed = on_changed or (lambda _job_id: None)
        self.engine = engine
        self.sessions = sessions
        self.pool = pool
        self.owner = owner
        self._refreshes: SingleFlight[bool | None] = SingleFlight()
        self._limits = {name: asyncio.Semaphore(settings.jobs.poll_concurrency)
                        for name in pool.configs}
        # The longest a create call can take: every upstream tried in turn, each timeout
        # counted twice (httpx applies it per phase: connect, upload, answer). The creating
        # process leases the job for this long; a job still "submitting" after it lost its
        # create call (the process died) and is refunded.
        every_upstream = sum(u.timeout_s for u in settings.upstreams) or 60.0
        self.submit_grace_s = 2 * every_upstream + settings.jobs.lease_s

    async def refresh(self, job_id: str) -> bool | None:
        """Poll the job's upstream once, sharing the call with concurrent callers.

        True when the stored job is now what its upstream says (or it had ended already),
        False when the upstream could not be asked, None when another process is polling it.
        """
        # Shared, and shielded: a client hanging up must not abandon a poll halfway through
        # settling.
        return await self._refreshes.run(job_id, lambda: self._lease_and_poll(job_id))

    async def refresh_now(self, job: Job) -> bool:
        """Refresh the job even while another process polls it: wait for that poll to end
        (at most the upstream's timeout), then poll. True if the upstream's word is stored."""
        assert job.upstream is not None
        deadline = now() + self.pool.configs[job.upstream].timeout_s
        while (known := await self.refresh(job.id)) is None and now() < deadline:
            await asyncio.sleep(LEASE_WAIT_S)
        return bool(known)

    async def poll_batch(self, jobs: Sequence[Job]) -> None:
        """Poll leased jobs together; what didn't end a job is written in one transaction.

        Only a job that ended moves money, so only those get a transaction of their own.
        """
        results = await asyncio.gather(*(self._fetch(job) for job in jobs))
        quiet: list[str] = []
        moved: list[dict[str, object]] = []
        for job, result in zip(jobs, results, strict=True):
            if result is POLL_FAILED or (isinstance(result, UpstreamJob)
                                         and _unchanged(job, result)):
                quiet.append(job.id)
            elif isinstance(result, UpstreamJob) and result.status in UNFINISHED:
                moved.append({"job_id": job.id, "status": result.status,
                              "progress": result.progress, "content_url": result.content_url})
            elif isinstance(result, UpstreamJob):
                try:
                    await self.apply(job, result)
                except Exception:  # one bad write must not hold up the rest of the batch
                    log.exception("recording a poll failed", extra={"job_id": job.id})
        if quiet or moved:
            async with self.sessions() as session, session.begin():
                repo, at = JobRepository(session), now()
                if quiet:
                    await repo.mark_polled(quiet, self.owner, at)
                if moved:
                    await repo.record_progress(moved, at)
            for row in moved:
                self.on_changed(str(row["job_id"]))

    async def _lease_and_poll(self, job_id: str) -> bool | None:
        at = now()
        async with self.sessions() as session, session.begin():
            repo = JobRepository(session)
            leased = await repo.try_lease(job_id, self.owner, at, at + self.settings.jobs.lease_s)
            job = await repo.get(job_id)
        if job is None or job.status not in UNFINISHED:
            return True  # ended, and settled by whoever ended it
        return await self.poll(job) if leased else None

    async def poll(self, job: Job) -> bool:
        """Poll a job this process holds the lease of, then write what was learned.

        False if the upstream could not be asked."""
        result = await self._fetch(job)
        if result is POLL_FAILED:
            await self._release(job)
            return False
        if isinstance(result, UpstreamJob):
            await self.apply(job, result)
        return True

    async def _fetch(self, job: Job) -> UpstreamJob | object | None:
        """The upstream's view of a leased job; None when the job was ended here instead."""
        at = now()
        if at - job.created_at > self.settings.jobs.max_age_s:
            await self.end(job, EXPIRED)
            await self.cancel_upstream(job)
            return None
        if job.upstream_id is None or job.upstream is None:
            if at - job.created_at > self.submit_grace_s:
                await self.end(job, LOST)
                return None
            return POLL_FAILED  # its create call is still running somewhere
        placement = self.pool.placement(job.upstream, job.upstream_key_index)
        try:
            async with self._limits[job.upstream]:
                return await self.pool.adapter(job.upstream).retrieve(job.upstream_id,
                                                                      placement.key)
        except UpstreamError as exc:
            # A failed poll says nothing about the job: keep it running and its money held.
            log.warning("poll failed", extra={"job_id": job.id, "upstream": job.upstream,
                                              "reason": str(exc)})
            POLL_FAILURES.labels(job.upstream).inc()
            return POLL_FAILED

    async def apply(self, job: Job, result: UpstreamJob) -> None:
        at = now()
        values = {
            "status": result.status, "progress": result.progress, "polled_at": at,
            "updated_at": at, "lease_owner": None, "lease_until": None,
        }
        if result.content_url:
            values["content_url"] = result.content_url
        if result.status in ("completed", "failed"):
            values.update(completed_at=result.completed_at or at, expires_at=result.expires_at,
                          error_code=result.error_code, error_message=result.error_message,
                          upstream_error=result.error_raw)
        kind = {"completed": "capture", "failed": "refund"}.get(result.status)
        note = result.error_code if kind == "refund" else None
        if not await self._record(job, values, kind, note=note):
            return
        if not _unchanged(job, result):
            # An unchanged answer leaves what clients see as it was: dropping their cached
            # copy would only make every poll in flight wait for a read of the same row.
            self.on_changed(job.id)
        if result.status in ("completed", "failed"):
            log.info("job ended", extra={"job_id": job.id, "status": result.status})
        if result.status == "completed" and self.on_completed is not None:
            self.on_completed(job.id)

    async def end(self, job: Job, ending: Ending, *, deleted: bool = False) -> bool:
        """End an unfinished job on the gateway's own authority and refund its hold."""
        at = now()
        values: dict[str, object] = {
            "status": ending.status, "error_code": ending.code, "error_message": ending.message,
            "completed_at": at, "updated_at": at, "polled_at": at, "lease_owner": None,
            "lease_until": None,
        }
        if deleted:
            values["deleted_at"] = at
        if not await self._record(job, values, "refund", note=ending.code):
            return False
        self.on_changed(job.id)
        log.info("job ended by gateway", extra={"job_id": job.id, "reason": ending.code})
        return True

    async def _record(self, job: Job, values: dict[str, object], kind: str | None, *,
                      note: str | None) -> bool:
        """Write what became of an unfinished job and, if it ended, settle its hold: one
        transaction. False if the job had already ended (whoever ended it settled it)."""
        def write(conn: Connection) -> bool | None:
            if not job_rows.update_unfinished(conn, job.id, values):
                return None
            outbox.job_ended(conn, job, values)
            return kind is not None and ledger.settle(conn, job, kind, note=note)

        settled = await transact(self.engine, write)
        if settled:
            record_settlement(str(kind), job.price_micros)
        return settled is not None

    async def _release(self, job: Job) -> None:
        at = now()
        async with self.sessions() as session, session.begin():
            await JobRepository(session).update(
                job.id, Job.lease_owner == self.owner,
                polled_at=at, lease_owner=None, lease_until=None,
            )

    async def cancel_upstream(self, job: Job) -> None:
        if job.upstream is None or job.upstream_id is None:
            return
        placement = self.pool.placement(job.upstream, job.upstream_key_index)
        try:
            await self.pool.adapter(job.upstream).delete(job.upstream_id, placement.key)
        except UpstreamError as exc:
            log.warning("upstream delete failed", extra={"job_id": job.id, "reason": str(exc)})
