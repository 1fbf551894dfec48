"""A small in-process cache with a time bound, for the hot read paths.

Entries live at most ``ttl_s`` (or until an explicit deadline, if sooner) and are dropped at
once when this process changes what they describe. Across processes the staleness is bounded
by the TTL, plus ``serve_stale_s`` and one reload where stale entries are served; nothing that
moves money reads from here.

Misses are loaded once: when an entry expires under load, the requests that find it missing
share one load instead of all queueing on the database at the same moment. A cache made with
``serve_stale_s`` also keeps answering with an entry that is at most that far past its time
while one reload runs in the background, so a busy key never makes its callers wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Concurrent callers with the same key share one call and its outcome."""

    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Task[T]] = {}

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        # Shielded: one caller hanging up must not cancel the call the others wait on.
        return await asyncio.shield(self.start(key, call))

    def start(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """The call in flight for ``key``, started now if there is none."""
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(call())
            self._calls[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved, so no "never retrieved" warning if nobody waited


class TTLCache(Generic[V]):
    def __init__(self, ttl_s: float, max_entries: int = 50_000, *,
                 serve_stale_s: float = 0.0) -> None:
        self.ttl_s = ttl_s
        self.serve_stale_s = serve_stale_s
        self.max_entries = max_entries
        # key -> (fresh until, servable until, value)
        self._entries: OrderedDict[str, tuple[float, float, V]] = OrderedDict()
        self._loads: SingleFlight[V] = SingleFlight()
        # Bumped by every drop: a load that began before a change must not cache what it read.
        self._epoch = 0

    async def get_or_load(self, key: str,
                          load: Callable[[], Awaitable[tuple[V, float | None]]],
                          *, flight: Hashable | None = None) -> V:
        """The cached value, or ``load()``'s (value, lifetime cap), loaded once for all askers.

        ``flight`` keys the shared load when callers must not share one another's answer (two
        tokens asking for one video share a cache slot, not an ownership check).
        """
        flight = key if flight is None else flight
        entry = self._entries.get(key)
        if entry is not None:
            at = time.monotonic()
            if at < entry[0]:
                return entry[2]
            if at < entry[1]:
                self._loads.start(flight, lambda: self._reload(key, load))
                return entry[2]
        return await self._loads.run(flight, lambda: self._load(key, load))

    async def _load(self, key: str,
                    load: Callable[[], Awaitable[tuple[V, float | None]]]) -> V:
        epoch = self._epoch
        value, within_s = await load()
        if epoch == self._epoch:
            self.put(key, value, within_s=within_s)
        return value

    async def _reload(self, key: str,
                      load: Callable[[], Awaitable[tuple[V, float | None]]]) -> V:
        try:
            return await self._load(key, load)
        except BaseException:
            # Whatever failed (a revoked token, a deleted video) is found by the next caller's
            # own load, not hidden behind the old value.
            self.drop(key)
            raise

    def put(self, key: str, value: V, *, within_s: float | None = None) -> None:
        if self.ttl_s <= 0:
            return
        life = self.ttl_s if within_s is None else min(self.ttl_s, within_s)
        if life <= 0:
            return
        fresh_until = time.monotonic() + life
        self._entries[key] = (fresh_until, fresh_until + self.serve_stale_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        self._epoch += 1
        self._entries.pop(key, None)
