"""The PostgreSQL server the benchmarks use: started if it is down (as ``.ci/run`` does), and
a fresh database for each run, dropped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.servers import fresh_postgres_url

SERVER = os.environ.get("GATEWAY_BENCH_POSTGRES_URL",
                        "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


def _ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"],
                          check=False).returncode == 0


def ensure_running() -> None:
    """Start the local cluster if nothing answers on 127.0.0.1:5432."""
    if shutil.which("pg_isready") is None or _ready():
        return
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if versions:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main",
                        "start"], check=False)
    for _ in range(30):
        if _ready():
            return
        time.sleep(1)
    raise RuntimeError("PostgreSQL is not reachable on 127.0.0.1:5432")


def plain(url: str) -> str:
    """The URL as asyncpg takes it (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """An empty database on the server (SQLAlchemy URL), dropped when the block ends."""
    ensure_running()
    url = fresh_postgres_url(SERVER)
    try:
        yield url
    finally:
        asyncio.run(_drop(url.rsplit("/", 1)[1]))


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(plain(SERVER))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
