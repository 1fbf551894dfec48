"""Transactions on the gateway's SQLite file: run on the event loop, yet never waiting there.

Another process holding the write lock is played by a plain sqlite3 connection in this one.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import db
from gateway.sqlite import THREAD_EVERY
from tests.support.servers import Gateway, Simulator, upstream

pytestmark = pytest.mark.skipif(bool(os.environ.get("GATEWAY_TEST_POSTGRES_URL")),
                                reason="SQLite only: another process's lock on the file")

FRAME = 4096 + 24  # a write-ahead log frame: one page and its header


@contextmanager
def write_locked(path: Path, seconds: float) -> Iterator[None]:
    """Hold the database's write lock, as another process's transaction would, for a while."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(seconds, other.execute, ("COMMIT",))
    release.start()
    try:
        yield
    finally:
        release.join()
        other.close()


class LoopWatch:
    """The longest the event loop went without running a 10 ms ticker."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            self.longest = max(self.longest, time.monotonic() - started)

    async def __aenter__(self) -> LoopWatch:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0.02)  # ticking before whatever is watched starts
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        await asyncio.sleep(0.02)  # the ticker's last wait ends and is counted
        self._task.cancel()


def insert(payload: str) -> Callable[[Connection], None]:
    def work(conn: Connection) -> None:
        conn.execute(text("INSERT INTO rows (payload) VALUES (:p)"), {"p": payload})
    return work


def count(conn: Connection) -> Any:
    return conn.execute(text("SELECT count(*) FROM rows")).scalar()


def with_engine(path: Path, body: Callable[[AsyncEngine], Any]) -> None:
    async def main() -> None:
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await db.transact(engine, lambda conn: conn.execute(
                text("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload TEXT)")))
            await body(engine)
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_a_transaction_waits_out_another_process_lock_off_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "locks.db"

    async def body(engine: AsyncEngine) -> None:
        await db.transact(engine, insert("warm"))  # the fast path is in use before the lock
        async with LoopWatch() as watch:
            with write_locked(path, 0.6):
                started = time.monotonic()
                await db.transact(engine, insert("waited"))
                waited = time.monotonic() - started
        assert waited >= 0.5  # it waited for the lock, rather than failing on it
        assert watch.longest < 0.3  # while the event loop went on serving
        assert await db.transact(engine, count) == 2

    with_engine(path, body)


def test_other_statements_still_wait_for_a_lock_after_transactions(tmp_path: Path) -> None:
    path = tmp_path / "locks.db"

    async def body(engine: AsyncEngine) -> None:
        for _ in range(3):
            await db.transact(engine, insert("fast"))
        with write_locked(path, 0.4):
            async with engine.begin() as conn:  # a session's statement, on the thread
                await conn.execute(text("INSERT INTO rows (payload) VALUES ('session')"))
        assert await db.transact(engine, count) == 4

    with_engine(path, body)


def test_the_write_ahead_log_is_checkpointed_under_transactions_alone(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    transactions = 5 * THREAD_EVERY

    async def body(engine: AsyncEngine) -> None:
        for _ in range(transactions):
            await db.transact(engine, insert("x" * 8000))  # about three pages each
        assert await db.transact(engine, count) == transactions
        # Unchecked, the log would hold every page written: over 3,000 frames. Checkpoints (at
        # SQLite's 1,000 frames) keep it to about that plus what is written between two
        # chances. (Measured before the engine closes: the last connection's close empties it.)
        frames = (Path(f"{path}-wal").stat().st_size - 32) // FRAME
        assert 1000 < frames < 2000, frames

    with_engine(path, body)


def test_a_create_waits_out_another_process_lock_and_the_gateway_keeps_answering(
        make_gateway: Callable[..., Gateway], simulator: Simulator) -> None:
    gw = make_gateway([upstream("primary", simulator, ["official"])])
    path = Path(gw.config["database_url"].split("///", 1)[1])
    token_id, token = gw.create_token(balance_usd="10")
    client = gw.client(token)
    client.videos.create(prompt="warm", model="sora-2", seconds="4")
    created: list[Any] = []
    with write_locked(path, 1.0):
        submit = threading.Thread(target=lambda: created.append(
            client.videos.create(prompt="while locked", model="sora-2", seconds="4")))
        submit.start()
        slowest = 0.0
        with httpx.Client(base_url=gw.url, timeout=5) as http:
            for _ in range(5):
                started = time.monotonic()
                assert http.get("/healthz").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                time.sleep(0.1)
        assert not created  # still waiting for the lock
        submit.join(timeout=15)
    assert slowest < 0.3
    assert created
    assert created[0].status == "queued"
    holds = [entry for entry in gw.ledger(token_id) if entry["kind"] == "hold"]
    assert len(holds) == 2
    gw.assert_reconciles(token_id)
