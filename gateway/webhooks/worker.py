"""The delivery worker: sends queued events, retries them, and gives up on them.

Deliveries are claimed through the database with a lease, as the reconciler claims jobs, so
any number of gateway processes share the outbox and none sends an event another is sending.
A process that dies mid-attempt (even ``kill -9``) leaves its lease behind; once it expires
the event is claimed and sent again, under the same ``webhook-id`` (at least once). Only due
rows are claimed and attempts run side by side, so a receiver that hangs or fails holds up
one slot of ``webhooks.concurrency``, never the events of the others.

At volume the worker is a pipeline: ``webhooks.concurrency`` senders take claimed events
from a queue, a claim refills it with up to as many again whenever it runs half empty (two
statements a claim, whatever it wins), and results are written a batch at a time
(``results.ResultWriter``).
"""

from __future__ import annotations

import asyncio
import logging
import random

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db import now, transact
from gateway.metrics import WEBHOOK_OLDEST_AGE, WEBHOOK_QUEUE
from gateway.webhooks import repository as outbox_rows
from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.repository import Claimed, DeliveryRepository
from gateway.webhooks.results import ResultWriter, result_of
from gateway.webhooks.sender import Attempt, Outcome, WebhookClient, deliver, webhook_client
from gateway.webhooks.signing import live_secrets

log = logging.getLogger("gateway.webhooks")

NO_WEBHOOK = "the token has no webhook_url any more"


class DeliveryWorker:
    def __init__(self, config: WebhooksConfig, engine: AsyncEngine,
                 sessions: async_sessionmaker[AsyncSession], owner: str) -> None:
        self.config = config
        # Claims and results go through db.transact: on SQLite a whole transaction then
        # costs no trip to the database's thread.
        self.engine = engine
        self.sessions = sessions
        self.owner = owner
        self._rng = random.SystemRandom()
        self._client: WebhookClient | None = None
        self._results = ResultWriter(engine, owner)
        self._queue: asyncio.Queue[Claimed] = asyncio.Queue()
        self._sending = 0
        self._room = asyncio.Event()  # set when a claim may be made
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._client = webhook_client(self.config)
        self._tasks = [asyncio.create_task(self._run(), name="webhooks"),
                       asyncio.create_task(self._results.run(), name="webhook-results"),
                       *(asyncio.create_task(self._sender(), name="webhook-sender")
                         for _ in range(self.config.concurrency))]

    async def stop(self) -> None:
        if not self._tasks:
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            # The attempts made are written first, so their events are not sent again.
            await self._results.flush()
            async with self.sessions() as session, session.begin():
                await DeliveryRepository(session).release(self.owner)
        except Exception:  # the leases run out by themselves
            log.warning("releasing webhook leases failed", exc_info=True)
        if self._client is not None:
            await self._client.aclose()

    def _held(self) -> int:
        """Events claimed and not yet sent: queued, or being sent."""
        return self._queue.qsize() + self._sending

    async def _run(self) -> None:
        reported_at = 0.0
        while True:
            backlog = False
            try:
                # The queue's gauges read every pending row: once an interval, not per cycle.
                if now() - reported_at >= self.config.poll_interval_s:
                    reported_at = now()
                    await self._report_queue()
                backlog = await self._claim()
            except Exception:
                log.exception("webhook delivery cycle failed")
            await self._wait(backlog)

    async def _wait(self, backlog: bool) -> None:
        """Sleep a poll interval or, while more events are due, until the queue is half
        empty (at most the interval)."""
        self._room.clear()
        if backlog and self._held() <= self.config.concurrency:
            return
        try:
            async with asyncio.timeout(self.config.poll_interval_s):
                await (self._room.wait() if backlog else asyncio.sleep(
                    self.config.poll_interval_s))
        except TimeoutError:
            pass

    async def _claim(self) -> bool:
        """Claim due events until twice ``concurrency`` are held; True if as many as asked
        were won (more may be due, so the next claim is made as soon as there is room)."""
        want = 2 * self.config.concurrency - self._held()
        if want <= 0:
            return True
        at, owner = now(), self.owner
        until = at + self.config.lease_s
        claimed = await transact(
            self.engine, lambda conn: outbox_rows.claim(conn, owner, at, until, want))
        for delivery in claimed:
            self._queue.put_nowait(delivery)
        return len(claimed) == want

    async def _sender(self) -> None:
        while True:
            delivery = await self._queue.get()
            self._sending += 1
            try:
                await self._attempt(delivery)
            finally:
                self._sending -= 1
                if self._held() <= self.config.concurrency:
                    self._room.set()

    async def _attempt(self, delivery: Claimed) -> None:
        try:
            started = now()
            if delivery.lease_until - started <= self.config.timeout_s:
                # Queued so long that its lease could run out mid-attempt and another
                # process send it too: it goes again once the lease has run out.
                return
            attempt = await self._send(delivery)
            self._results.add(result_of(delivery, attempt, started, self.config, self._rng))
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

    async def _report_queue(self) -> None:
        async with self.sessions() as session:
            count, oldest = await DeliveryRepository(session).queue()
        WEBHOOK_QUEUE.set(count)
        WEBHOOK_OLDEST_AGE.set(now() - oldest if oldest is not None else 0)
