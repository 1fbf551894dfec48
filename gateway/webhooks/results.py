"""Attempts' results, written to the outbox a batch at a time.

A result is one UPDATE of its row, and each transaction has a fixed cost well above a
statement's (SQLAlchemy's execution, the commit): written one by one they were half the
delivery worker's time at volume. Results wait here at most ``FLUSH_EVERY_S`` (or until
``BATCH`` of them are in) and go in one transaction. Until then the row stays leased to this
process, so nobody sends it again; a process that dies first loses only its bookkeeping:
the lease runs out and the event is sent again under its ``webhook-id`` (at least once).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import now, transact
from gateway.metrics import WEBHOOK_DELIVERIES
from gateway.webhooks import repository as outbox_rows
from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.repository import Claimed, Result
from gateway.webhooks.schedule import Rng, next_attempt_at
from gateway.webhooks.sender import Attempt, Outcome

log = logging.getLogger("gateway.webhooks")

FLUSH_EVERY_S = 0.05
BATCH = 256


def result_of(delivery: Claimed, attempt: Attempt, started: float, config: WebhooksConfig,
              rng: Rng) -> Result:
    """The row's new state after ``attempt``: delivered, failed for good, or its next try."""
    at = now()
    first = delivery.first_attempt_at or started
    retry_at = delivered_at = None
    if attempt.outcome is Outcome.DELIVERED:
        status, delivered_at = "delivered", at
    else:
        if attempt.outcome is Outcome.RETRY:
            retry_at = next_attempt_at(
                first, delivery.attempts + 1, at, rng, retry_after_s=attempt.retry_after_s,
                base_s=config.backoff_base_s, cap_s=config.backoff_cap_s,
                max_age_s=config.max_age_s)
        status = "failed" if retry_at is None else "pending"
    return Result(delivery, status, last_attempt_at=started, first_attempt_at=first,
                  last_status=attempt.status_code, last_error=attempt.error,
                  next_attempt_at=retry_at, delivered_at=delivered_at)


class ResultWriter:
    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        self._pending: list[Result] = []
        self._waiting = asyncio.Event()
        self._full = asyncio.Event()

    def add(self, result: Result) -> None:
        self._pending.append(result)
        self._waiting.set()
        if len(self._pending) >= BATCH:
            self._full.set()

    async def run(self) -> None:
        while True:
            await self._waiting.wait()
            try:
                async with asyncio.timeout(FLUSH_EVERY_S):
                    await self._full.wait()
            except TimeoutError:
                pass
            if not await self.flush():
                await asyncio.sleep(1.0)  # the database is down: not twenty tries a second

    async def flush(self) -> bool:
        """Write what has come in; on failure it is tried again with the next batch, as long
        as the rows' leases last (after that the event goes again anyway)."""
        batch, self._pending = self._pending, []
        self._waiting.clear()
        self._full.clear()
        if not batch:
            return True
        owner = self.owner
        try:
            written = await transact(self.engine, lambda conn: outbox_rows.record(
                conn, owner, batch))
        except Exception:
            log.exception("writing webhook results failed")
            at = now()
            for result in batch:
                if result.claimed.lease_until > at:
                    self.add(result)
            return False
        for result in written:
            _report(result)
        return True


def _report(result: Result) -> None:
    outcome = "retried" if result.status == "pending" else result.status
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    if outcome == "failed":
        log.warning("webhook delivery failed", extra={
            "event_id": result.claimed.id, "attempts": result.claimed.attempts + 1,
            "reason": result.last_error})
