"""aiosqlite with one trip to its thread per statement instead of three or four.

aiosqlite runs every call on the connection's own thread and hands the result back to the
event loop; each hand-off costs about 0.1 ms on a loaded machine. SQLAlchemy's adapter makes
four for a SELECT (open a cursor, execute, fetch, close) and three for a write, so a two-statement
transaction spent more time crossing threads than in SQLite. Here a statement and its rows come
back in one trip, and cursors are opened and closed without one. Statements still run on
aiosqlite's thread, so a busy database (a checkpoint, another process's write lock) never blocks
the event loop.

A transaction written as plain statements on a synchronous connection (``transact``) goes
further: it runs on the event loop itself, with no trip at all, and on the thread only when it
would have to wait.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

# SQLite's default; set again after each transaction run on the event loop, which turns it off.
WAL_AUTOCHECKPOINT_PAGES = 1000
# One transaction in this many runs on the thread, where its commit may checkpoint: the log
# grows by at most this many transactions past SQLite's threshold between two checkpoints.
THREAD_EVERY = 200


def _execute(cursor: sqlite3.Cursor, sql: str, parameters: Any) -> list[Any] | None:
    cursor.execute(sql, parameters)
    return cursor.fetchall() if cursor.description else None


class Cursor(aiosqlite.Cursor):
    _rows: list[Any] | None = None

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        self._rows = await self._conn._execute(  # type: ignore[no-untyped-call]
            _execute, self._cursor, sql,
            () if parameters is None else parameters)
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows or [], None
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._rows or []
        count = size or self.arraysize
        self._rows = rows[count:]
        return rows[:count]

    async def close(self) -> None:
        # The connection allows other threads (check_same_thread=False) and SQLAlchemy runs
        # one statement at a time on it, so closing here cannot race a statement.
        self._cursor.close()


class Connection(aiosqlite.Connection):
    _statements: SyncConnection | None = None
    busy_timeout_ms = 30_000
    _here_since_thread = 0

    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self, self._conn.cursor())

    async def transact(self, work: Callable[[SyncConnection], T]) -> T:
        """Run ``work`` as one transaction; the caller must have this connection to itself
        (checked out of the engine's pool) for the duration, as for any other statement.

        It runs right here on the event loop: SQLite's own part of a small transaction is tens
        of microseconds, less than a single round trip to the connection's thread. It must
        never wait here, so it runs with no busy timeout and no automatic checkpoint: if
        another process holds the write lock, it is rolled back and run again on the thread,
        where waiting for the lock is harmless; and every ``THREAD_EVERY``-th transaction runs
        on the thread anyway, where its commit may checkpoint the write-ahead log.
        """
        if self._here_since_thread < THREAD_EVERY:
            self._here_since_thread += 1
            ran, result = self._transact_here(work)
            if ran:
                return result  # type: ignore[return-value]
        self._here_since_thread = 0
        return await self._execute(  # type: ignore[no-untyped-call,no-any-return]
            self._transact, work)

    def _transact_here(self, work: Callable[[SyncConnection], T]) -> tuple[bool, T | None]:
        raw = self._conn
        raw.execute("PRAGMA busy_timeout=0")
        raw.execute("PRAGMA wal_autocheckpoint=0")
        try:
            return True, self._transact(work)
        except OperationalError as exc:
            if not _is_busy(exc.orig):
                raise
            return False, None  # rolled back; the caller runs it again on the thread
        finally:
            raw.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            raw.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")

    def _transact(self, work: Callable[[SyncConnection], T]) -> T:
        conn = self._statements
        if conn is None or conn.closed or conn.invalidated:
            # SQLAlchemy's synchronous SQLite dialect over this very sqlite3 connection: the
            # same SQL, types and errors as the async engine. It stays open, so a transaction
            # costs no checkout of its own.
            raw = self._conn
            conn = self._statements = create_sync_engine(
                "sqlite://", creator=lambda: raw, poolclass=StaticPool,
                pool_reset_on_return=None).connect()
        with conn.begin():
            return work(conn)


def _is_busy(error: BaseException | None) -> bool:
    return (isinstance(error, sqlite3.OperationalError)
            and error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY)


def connect(path: str, timeout_s: float) -> Connection:
    def connector() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=timeout_s, check_same_thread=False)

    connection = Connection(connector, iter_chunk_size=64)
    connection.busy_timeout_ms = int(timeout_s * 1000)
    return connection
