"""The gateway processes sharing one database, so a per-upstream cap is shared among them.

Each process's reconciler records itself here every second; a process not seen for ``STALE_S``
is gone (killed, or on a host that lost the database). ``jobs.poll_concurrency`` is the cap
for an upstream across every process, so each polls with its share: the cap divided by the
processes alive, at least one each.
"""

from __future__ import annotations

from sqlalchemy import Connection, Double, String, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, now, transact

# Ten reports (one a second): a process stalled for a moment by a
# long transaction is not dropped, and a dead one stops counting within seconds.
STALE_S = 10.0


class GatewayProcess(Base):
    """A serving process, as its reconciler last reported it."""

    __tablename__ = "gateway_processes"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[float] = mapped_column(Double)


class Peers:
    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self.engine = engine
        self.owner = owner

    async def beat(self) -> int:
        """Record this process as alive, forget the ones gone; returns how many are alive."""
        at = now()
        return await transact(self.engine, lambda conn: _beat(conn, self.owner, at))

    async def leave(self) -> None:
        """Stop counting this process (a clean shutdown), so the others take its share now."""
        await transact(self.engine, lambda conn: conn.execute(
            delete(GatewayProcess).where(GatewayProcess.owner == self.owner)))


def _beat(conn: Connection, owner: str, at: float) -> int:
    seen = conn.execute(update(GatewayProcess).where(GatewayProcess.owner == owner)
                        .values(seen_at=at))
    if not seen.rowcount:
        conn.execute(insert(GatewayProcess).values(owner=owner, seen_at=at))
    conn.execute(delete(GatewayProcess).where(GatewayProcess.seen_at < at - STALE_S))
    return int(conn.execute(select(func.count()).select_from(GatewayProcess)).scalar_one())


def share(cap: int, processes: int) -> int:
    """One process's part of a cap shared by ``processes``: never zero, never above the cap."""
    return max(1, min(cap, cap // max(1, processes)))
