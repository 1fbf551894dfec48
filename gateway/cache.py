"""A small in-process cache with a time bound, for the hot read paths.

Entries live at most ``ttl_s`` (or until an explicit deadline, if sooner) and are dropped at
once when this process changes what they describe. Across processes the staleness is bounded
by the TTL; nothing that moves money reads from here.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, ttl_s: float, max_entries: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: str, value: V, *, within_s: float | None = None) -> None:
        if self.ttl_s <= 0:
            return
        life = self.ttl_s if within_s is None else min(self.ttl_s, within_s)
        if life <= 0:
            return
        self._entries[key] = (time.monotonic() + life, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
