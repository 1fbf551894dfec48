"""The delivery worker: sends queued events, retries them, and gives up on them.

Deliveries are claimed through the database with a lease, as the reconciler claims jobs, so
any number of gateway processes share the outbox and none sends an event another is sending.
A process that dies mid-attempt (even ``kill -9``) leaves its lease behind; once it expires
the event is claimed and sent again, under the same ``webhook-id`` (at least once). Only due
rows are claimed and attempts run side by side, so a receiver that hangs or fails holds up
one slot of ``webhooks.concurrency``, never the events of the others.
"""

from __future__ import annotations

import asyncio
import logging
import random

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db import now, transact
from gateway.metrics import WEBHOOK_DELIVERIES, WEBHOOK_OLDEST_AGE, WEBHOOK_QUEUE
from gateway.webhooks import repository as outbox_rows
from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.repository import Claimed, DeliveryRepository
from gateway.webhooks.schedule import next_attempt_at
from gateway.webhooks.sender import Attempt, Outcome, deliver, webhook_client
from gateway.webhooks.signing import live_secrets

log = logging.getLogger("gateway.webhooks")

NO_WEBHOOK = "the token has no webhook_url any more"


class DeliveryWorker:
    def __init__(self, config: WebhooksConfig, engine: AsyncEngine,
                 sessions: async_sessionmaker[AsyncSession], owner: str) -> None:
        self.config = config
        # Claims and results go through db.transact: on SQLite a whole transaction then
        # costs no trip to the database's thread, and every delivery makes one or two.
        self.engine = engine
        self.sessions = sessions
        self.owner = owner
        self._rng = random.SystemRandom()
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._client = webhook_client(self.config)
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        if self._task is None:
            return
        tasks = [self._task, *self._attempts]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            async with self.sessions() as session, session.begin():
                await DeliveryRepository(session).release(self.owner)
        except Exception:  # the leases run out by themselves
            log.warning("releasing webhook leases failed", exc_info=True)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        reported_at = 0.0
        while True:
            backlog = False
            try:
                # The queue's gauges read every pending row: once an interval, not per cycle.
                if now() - reported_at >= self.config.poll_interval_s:
                    reported_at = now()
                    await self._report_queue()
                backlog = await self._start_attempts()
            except Exception:
                log.exception("webhook delivery cycle failed")
            await self._wait(backlog)

    async def _wait(self, backlog: bool) -> None:
        """Sleep a poll interval or, while more events are due, until half the slots are free
        (at most the interval): a claim costs three statements, so it is made for several
        slots at once rather than for each one as it frees up."""
        if not (backlog and self._attempts):
            await asyncio.sleep(self.config.poll_interval_s)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.poll_interval_s
        busy_at_most = self.config.concurrency - max(1, self.config.concurrency // 2)
        while (left := deadline - loop.time()) > 0:
            # Done tasks leave the set only when their callback has run.
            running = [task for task in self._attempts if not task.done()]
            if len(running) <= busy_at_most:
                return
            await asyncio.wait(running, timeout=left, return_when=asyncio.FIRST_COMPLETED)

    async def _start_attempts(self) -> bool:
        """Claim due events for the free slots; True if every slot is taken (more may be due,
        so the next claim is made as soon as a slot frees up rather than an interval later)."""
        free = self.config.concurrency - len(self._attempts)
        if free <= 0:
            return True
        at, owner = now(), self.owner
        until = at + self.config.lease_s
        claimed = await transact(
            self.engine, lambda conn: outbox_rows.claim(conn, owner, at, until, free))
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(delivery))
            self._attempts.add(task)
            task.add_done_callback(self._attempts.discard)
        return len(claimed) == free

    async def _attempt(self, delivery: Claimed) -> None:
        try:
            started = now()
            attempt = await self._send(delivery)
            await self._record(delivery, attempt, started)
        except Exception:
            log.exception("webhook delivery attempt failed", extra={"event_id": delivery.id})

    async def _send(self, delivery: Claimed) -> Attempt:
        if delivery.url is None or delivery.secret is None:
            return Attempt(Outcome.GIVE_UP, error=NO_WEBHOOK)
        assert self._client is not None
        secrets = live_secrets(delivery.secret, delivery.previous_secret, delivery.rotated_at,
                               now(), self.config.secret_grace_s)
        return await deliver(self._client, delivery.url, delivery.id, delivery.body, secrets,
                             self.config)

    async def _record(self, delivery: Claimed, attempt: Attempt, started: float) -> None:
        at = now()
        first = delivery.first_attempt_at or started
        values: dict[str, object] = {
            "attempts": delivery.attempts + 1, "first_attempt_at": first,
            "last_attempt_at": started, "last_status": attempt.status_code,
            "last_error": attempt.error, "next_attempt_at": None,
        }
        if attempt.outcome is Outcome.DELIVERED:
            values.update(status="delivered", delivered_at=at)
        elif attempt.outcome is Outcome.RETRY:
            config = self.config
            values["next_attempt_at"] = next_attempt_at(
                first, delivery.attempts + 1, at, self._rng,
                retry_after_s=attempt.retry_after_s, base_s=config.backoff_base_s,
                cap_s=config.backoff_cap_s, max_age_s=config.max_age_s)
        if values["next_attempt_at"] is None and attempt.outcome is not Outcome.DELIVERED:
            values["status"] = "failed"
        owner = self.owner
        if not await transact(self.engine,
                              lambda conn: outbox_rows.record(conn, delivery, owner, values)):
            return  # held too long; the process that took it over has the say
        outcome = str(values.get("status", "retried"))
        WEBHOOK_DELIVERIES.labels(outcome).inc()
        if outcome == "failed":
            log.warning("webhook delivery failed", extra={
                "event_id": delivery.id, "attempts": delivery.attempts + 1,
                "reason": attempt.error})

    async def _report_queue(self) -> None:
        async with self.sessions() as session:
            count, oldest = await DeliveryRepository(session).queue()
        WEBHOOK_QUEUE.set(count)
        WEBHOOK_OLDEST_AGE.set(now() - oldest if oldest is not None else 0)
