"""Database: declarative base, engine and session factories, the session dependency."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    event,
    make_url,
)
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.util import await_only, greenlet_spawn

from gateway import sqlite

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only gives autoincrement to an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """A mapped class's Table, typed as one (SQLAlchemy types ``__table__`` as a FromClause)."""
    return cast(Table, model.__table__)


def now() -> float:
    return time.time()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while one writer commits; busy_timeout queues writers
    # instead of failing them when several requests settle money at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    if is_sqlite(url):
        # One connection per process: SQLite takes one writer at a time anyway, and queueing
        # transactions here is far cheaper than its busy handler, which sleeps and retries.
        # No transaction is held across an upstream call, so the queue stays short.
        # Sessions end their own transactions, so the pool's extra rollback on return is
        # skipped (it would be one more trip to the SQLite thread per transaction).
        kwargs: dict[str, Any] = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60,
                                  "pool_reset_on_return": None}
        parsed = make_url(url)
        path = parsed.database
        if path and path != ":memory:" and not parsed.query:
            kwargs["async_creator"] = lambda: sqlite.connect(path, timeout_s=30)
        else:
            kwargs["connect_args"] = {"timeout": 30}
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def transact(engine: AsyncEngine, work: Callable[[Connection], T]) -> T:
    """Run ``work``, plain statements on a synchronous connection, as one transaction.

    For the busiest transactions (a create's hold and its upstream id): on the gateway's SQLite
    file the whole transaction runs without a trip to the database's thread, where one
    statement at a time costs a trip each (about 0.1 ms apiece, and a create makes six); see
    ``sqlite.Connection.transact``. Elsewhere it runs on the async driver as any other
    transaction does. ``work`` must do nothing but database work, and may run twice on SQLite
    (the first attempt rolled back): on another thread, or again after a lock conflict.
    """
    # One greenlet for the whole transaction, where an AsyncConnection would spawn one each to
    # check out, to unwrap the driver and to check back in.
    return await greenlet_spawn(_transact, engine.sync_engine, work)


def _transact(engine: Engine, work: Callable[[Connection], T]) -> T:
    if engine.dialect.name == "sqlite":
        # Straight from the pool, which is what queues transactions on SQLite's one connection.
        pooled = engine.pool.connect()
        try:
            driver = pooled.driver_connection
            if isinstance(driver, sqlite.Connection):
                return await_only(driver.transact(work))
        finally:
            pooled.close()
    with engine.begin() as conn:
        return work(conn)
