"""Prometheus metrics: requests, upstream latency, jobs, money, reconciler lag, webhooks,
event loop lag."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from gateway.ledger.pricing import MICROS_PER_USD

REGISTRY = CollectorRegistry()

REQUESTS = Counter("gateway_requests_total", "HTTP requests answered.",
                   ["method", "route", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram("gateway_request_duration_seconds", "Time to answer a request.",
                            ["route"], registry=REGISTRY)
UPSTREAM_SECONDS = Histogram(
    "gateway_upstream_request_duration_seconds", "Time an upstream took to answer.",
    ["upstream", "operation", "outcome"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SETTLEMENTS = Counter("gateway_settlements_total", "Holds settled, by kind.", ["kind"],
                      registry=REGISTRY)
SETTLED_USD = Counter("gateway_settled_usd_total", "USD settled, by kind.", ["kind"],
                      registry=REGISTRY)
HOLDS = Counter("gateway_holds_total", "Holds placed at create.", registry=REGISTRY)
JOBS = Gauge("gateway_jobs", "Jobs in the database, by status.", ["status"], registry=REGISTRY)
HELD_USD = Gauge("gateway_money_held_usd", "USD held for unfinished jobs.", registry=REGISTRY)
RECONCILER_LAG = Gauge("gateway_reconciler_lag_seconds",
                       "Seconds since the reconciler last finished a cycle.", registry=REGISTRY)
PROCESSES = Gauge("gateway_processes",
                  "Gateway processes polling this database, as this one last counted them; "
                  "each polls an upstream with jobs.poll_concurrency divided among them.",
                  registry=REGISTRY)
UPSTREAM_FAILOVERS = Counter("gateway_upstream_failovers_total",
                             "Creates an upstream failed, moving on to the next.", ["upstream"],
                             registry=REGISTRY)
WATCHED_JOBS = Gauge("gateway_watched_jobs",
                     "Jobs a held-open request (a chat completion) is waiting on.",
                     registry=REGISTRY)
ARCHIVED_VIDEOS = Counter("gateway_archived_videos_total",
                          "Finished videos the archive kept (stored) or gave up on (failed).",
                          ["outcome"], registry=REGISTRY)
ARCHIVE_RETRIES = Counter("gateway_archive_retries_total",
                          "Archive copies that failed and were scheduled again.",
                          registry=REGISTRY)
ARCHIVE_FAILURES = Counter("gateway_archive_failures_total",
                           "Videos that could not be archived before their upstream link "
                           "expired.", registry=REGISTRY)
POLL_FAILURES = Counter("gateway_poll_failures_total", "Upstream polls that failed.",
                        ["upstream"], registry=REGISTRY)
WEBHOOK_DELIVERIES = Counter(
    "gateway_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome: delivered, retried (a later try is scheduled) "
    "or failed (given up).", ["outcome"], registry=REGISTRY)
# The outbox is shared: every replica reports the same numbers (read them with max()).
WEBHOOK_QUEUE = Gauge("gateway_webhook_queue_depth",
                      "Webhook events neither delivered nor given up yet.", registry=REGISTRY)
WEBHOOK_OLDEST_AGE = Gauge("gateway_webhook_oldest_undelivered_age_seconds",
                           "Age of the oldest webhook event neither delivered nor given up.",
                           registry=REGISTRY)
# Fed by gateway/looplag.py when metrics.loop_lag_interval_s is set.
LOOP_LAG = Histogram(
    "gateway_event_loop_lag_seconds",
    "How much later than asked the event loop woke a ticker: how long something held it.",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
LOOP_LAG_MAX = Gauge("gateway_event_loop_lag_max_seconds",
                     "The longest event loop lag the ticker has seen since the process started.",
                     registry=REGISTRY)


@asynccontextmanager
async def upstream_timer(upstream: str, operation: str) -> AsyncIterator[None]:
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        UPSTREAM_SECONDS.labels(upstream, operation, outcome).observe(
            time.perf_counter() - started)


def record_settlement(kind: str, micros: int) -> None:
    SETTLEMENTS.labels(kind).inc()
    SETTLED_USD.labels(kind).inc(micros / MICROS_PER_USD)
