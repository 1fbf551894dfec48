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

from gateway.archive import policy as archive
from gateway.cache import SingleFlight
from gateway.config import Settings
from gateway.db import now, transact
from gateway.errors import InvalidRequest
from gateway.jobs.limit import Limit
from gateway.jobs.peers import share
from gateway.jobs.transition import JobState, Transition, decide
from gateway.ledger import service as ledger
from gateway.ledger.pricing import cost_micros, price_micros
from gateway.metrics import POLL_FAILURES, record_settlement
from gateway.upstreams.base import UpstreamError
from gateway.upstreams.outcome import Completed, PollOutcome, Unreachable
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


# How often refresh_now looks again while another process holds the job's lease.
LEASE_WAIT_S = 0.1


def state_of(job: Job, at: float, max_age_s: float) -> JobState:
    return JobState(status=job.status, progress=job.progress, hold_micros=job.price_micros,
                    age_s=at - job.created_at, max_age_s=max_age_s)


class JobTracker:
    def __init__(self, settings: Settings, engine: AsyncEngine,
                 sessions: async_sessionmaker[AsyncSession], pool: UpstreamPool, owner: str,
                 on_changed: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.on_changed = on_changed or (lambda _job_id: None)
        self.engine = engine
        self.sessions = sessions
        self.pool = pool
        self.owner = owner
        self._refreshes: SingleFlight[bool | None] = SingleFlight()
        # jobs.poll_concurrency is each upstream's cap across every process on the database;
        # the reconciler sets this process's share as processes come and go (share_polls).
        self._limits = {name: Limit(settings.jobs.poll_concurrency) for name in pool.configs}
        # The longest a create call can take: every upstream tried in turn, each timeout
        # counted twice (httpx applies it per phase: connect, upload, answer). The creating
        # process leases the job for this long; a job still "submitting" after it lost its
        # create call (the process died) and is refunded.
        every_upstream = sum(u.timeout_s for u in settings.upstreams) or 60.0
        self.submit_grace_s = 2 * every_upstream + settings.jobs.lease_s

    def share_polls(self, processes: int) -> None:
        """Poll each upstream with this process's share of its cap, ``processes`` sharing it."""
        mine = share(self.settings.jobs.poll_concurrency, processes)
        for limit in self._limits.values():
            limit.resize(mine)

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
        at = now()
        for job, outcome in zip(jobs, results, strict=True):
            if outcome is None:
                continue  # ended here (expired or lost) and settled already
            transition = self.decide(job, outcome, at)
            if transition is None:
                quiet.append(job.id)
            elif not transition.ends:
                moved.append({"job_id": job.id, "status": transition.status,
                              "progress": transition.progress, "content_url": job.content_url})
            else:
                try:
                    await self.apply(job, outcome, transition)
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
        at, owner = now(), self.owner
        # Core statements in one trip (db.transact): a job with waiters is refreshed every
        # refresh_after_s, and the ORM session's bookkeeping was most of that refresh's cost.
        leased, job = await transact(self.engine, lambda conn: job_rows.lease(
            conn, job_id, owner, at, at + self.settings.jobs.lease_s))
        if job is None or job.status not in UNFINISHED:
            return True  # ended, and settled by whoever ended it
        return await self.poll(job) if leased else None

    async def poll(self, job: Job) -> bool:
        """Poll a job this process holds the lease of, then write what was learned.

        False if the upstream could not be asked."""
        outcome = await self._fetch(job)
        if outcome is None:
            return True
        transition = self.decide(job, outcome, now())
        if transition is None:  # nothing new, or nothing learned: polled again later
            await self._release(job)
            return not isinstance(outcome, Unreachable)
        await self.apply(job, outcome, transition)
        return not isinstance(outcome, Unreachable)

    def decide(self, job: Job, outcome: PollOutcome, at: float) -> Transition | None:
        return decide(state_of(job, at, self.settings.jobs.max_age_s), outcome,
                      rendered_micros=self.rendered_price(job, outcome))

    def upstream_cost(self, job: Job, outcome: Completed) -> int | None:
        """What the job's upstream charges the operator for what it rendered, if it says."""
        config = self.pool.configs.get(job.upstream or "")
        if config is None or config.cost is None:
            return None
        # The vendor bills sound it rendered whether or not the client asked for it.
        audio = bool(job.audio) if outcome.audio is None else outcome.audio
        seconds = job.seconds if outcome.seconds is None else outcome.seconds
        size = outcome.size or job.size
        for model in dict.fromkeys((job.model, job.upstream_model or job.model)):
            cost = cost_micros(self.settings, config.cost, model=model, size=size,
                               seconds=seconds, audio=audio)
            if cost is not None:
                return cost
        return None

    def rendered_price(self, job: Job, outcome: PollOutcome) -> int | None:
        """The price of what a completed job says it rendered, when it says (else None)."""
        if not isinstance(outcome, Completed) or (outcome.seconds is None
                                                  and outcome.size is None):
            return None
        try:
            return price_micros(self.settings, group=job.group, billing_mode=job.billing_mode,
                                model=job.model, size=outcome.size or job.size,
                                seconds=job.seconds if outcome.seconds is None
                                else outcome.seconds,
                                audio=bool(job.audio) if outcome.audio is None
                                else outcome.audio and bool(job.audio))
        except InvalidRequest:
            # What it rendered has no price of its own (a size not in the table): the hold,
            # the price of what was asked, is what is captured.
            return None

    async def _fetch(self, job: Job) -> PollOutcome | None:
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
            return Unreachable("its create call is still running somewhere")
        placement = self.pool.placement(job.upstream, job.upstream_key_index)
        async with self._limits[job.upstream]:
            outcome = await self.pool.flavor(job.upstream).poll(
                job.upstream_id, job.poll_state or {}, placement.key)
        if isinstance(outcome, Unreachable):
            # A failed poll says nothing about the job: keep it running and its money held.
            log.warning("poll failed", extra={"job_id": job.id, "upstream": job.upstream,
                                              "reason": outcome.reason})
            POLL_FAILURES.labels(job.upstream).inc()
        return outcome

    async def apply(self, job: Job, outcome: PollOutcome,
                    transition: Transition | None = None) -> None:
        """Write a poll's transition (decided here unless given) and settle what it ends."""
        at = now()
        transition = transition or self.decide(job, outcome, at)
        if transition is None:
            return
        values: dict[str, object] = {
            "status": transition.status, "progress": transition.progress, "polled_at": at,
            "updated_at": at, "lease_owner": None, "lease_until": None,
        }
        if isinstance(outcome, Completed):
            video = outcome.asset("video")
            content_url = video.url if video is not None and video.url else job.content_url
            completed_at = outcome.completed_at or at
            values.update(completed_at=completed_at, expires_at=outcome.expires_at,
                          content_url=content_url, cost_micros=self.upstream_cost(job, outcome))
            # In the transaction that captures: a crash right after still archives the video.
            values.update(archive.pending(outcome, completed_at, content_url,
                                          self.settings.archive.give_up_after_s))
        elif transition.ends:
            values.update(completed_at=at, error_code=transition.error_code,
                          error_message=transition.error_message,
                          upstream_error=getattr(outcome, "raw", None))
        money = transition.money
        kind = money.kind if money else None
        note = transition.error_code if kind == "refund" else None
        charged = money.charged if money and kind == "capture" else None
        if not await self._record(job, values, kind, note=note, charged=charged):
            return
        self.on_changed(job.id)
        if transition.error_code == EXPIRED.code:
            # Past its age the gateway ended it, not the vendor: stop the vendor's work too,
            # or it renders on (and bills the operator) for a job already refunded.
            log.info("job ended by gateway", extra={"job_id": job.id, "reason": EXPIRED.code})
            await self.cancel_upstream(job)
        elif transition.ends:
            log.info("job ended", extra={"job_id": job.id, "status": transition.status})

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
                      note: str | None, charged: int | None = None) -> bool:
        """Write what became of an unfinished job and, if it ended, settle its hold: one
        transaction. False if the job had already ended (whoever ended it settled it)."""
        def write(conn: Connection) -> bool | None:
            if not job_rows.update_unfinished(conn, job.id, values):
                return None
            outbox.job_ended(conn, job, values)
            return kind is not None and ledger.settle(conn, job, kind, note=note,
                                                      charged=charged)

        settled = await transact(self.engine, write)
        if settled:
            taken = job.price_micros if charged is None else charged
            if kind == "capture" and taken < job.price_micros:
                record_settlement("capture", taken)
                record_settlement("refund", job.price_micros - taken)
            else:
                record_settlement(str(kind), job.price_micros)
        return settled is not None

    async def _release(self, job: Job) -> None:
        at, owner = now(), self.owner
        await transact(self.engine, lambda conn: job_rows.release(conn, job.id, owner, at))

    async def cancel_upstream(self, job: Job) -> None:
        if job.upstream is None or job.upstream_id is None:
            return
        placement = self.pool.placement(job.upstream, job.upstream_key_index)
        try:
            await self.pool.flavor(job.upstream).cancel(job.upstream_id, job.poll_state or {},
                                                        placement.key)
        except UpstreamError as exc:
            log.warning("upstream delete failed", extra={"job_id": job.id, "reason": str(exc)})
