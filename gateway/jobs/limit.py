"""A concurrency limit whose capacity can change while it is held.

asyncio.Semaphore's capacity is fixed at construction; the per-upstream poll cap is shared by
however many gateway processes are polling, so each process's share changes as they come and
go.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class Limit:
    """At most ``capacity`` holders at once, waiters served in arrival order.

    Lowering the capacity never interrupts a holder: the excess drains as holders leave.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def held(self) -> int:
        return self._held

    def resize(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._wake()

    async def __aenter__(self) -> None:
        if self._held < self._capacity and not self._waiters:
            self._held += 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # granted just as the waiter was cancelled: give it back
            else:
                self._waiters.remove(granted)
            raise

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self._release()

    def _release(self) -> None:
        self._held -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._held < self._capacity:
            granted = self._waiters.popleft()
            if not granted.done():
                self._held += 1
                granted.set_result(None)
