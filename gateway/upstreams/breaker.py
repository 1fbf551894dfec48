"""A circuit breaker per upstream: stop sending creates to one that keeps failing.

After ``failures`` consecutive failures the upstream is skipped for ``cooldown_s``; then one
create at a time is let through as a probe, and its outcome closes the circuit or opens it
again. A probe that never reports back (its create went elsewhere) expires after a cooldown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Breaker:
    failures: int = 5
    cooldown_s: float = 30.0
    consecutive: int = 0
    opened_at: float | None = None
    probe_at: float | None = None

    def available(self, at: float | None = None) -> bool:
        if self.opened_at is None:
            return True
        at = time.monotonic() if at is None else at
        if at - self.opened_at < self.cooldown_s:
            return False
        if self.probe_at is not None and at - self.probe_at < self.cooldown_s:
            return False
        self.probe_at = at
        return True

    def succeeded(self) -> None:
        self.consecutive, self.opened_at, self.probe_at = 0, None, None

    def failed(self, at: float | None = None) -> None:
        self.consecutive += 1
        self.probe_at = None
        if self.consecutive >= self.failures or self.opened_at is not None:
            self.opened_at = time.monotonic() if at is None else at

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.probe_at is not None else "open"
