"""Per-token request rate (requests per minute) over a sliding window."""

from __future__ import annotations

import math
import time
from collections import deque

from gateway.errors import RateLimited

WINDOW_S = 60.0


class RateLimiter:
    """Counts job-creating requests per token in this process."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}

    def check(self, token_id: str, rpm: int | None) -> None:
        if rpm is None:
            return
        at = time.monotonic()
        hits = self._hits.setdefault(token_id, deque())
        while hits and hits[0] <= at - WINDOW_S:
            hits.popleft()
        if len(hits) >= rpm:
            retry_after = math.ceil(hits[0] + WINDOW_S - at)
            raise RateLimited(f"This token is limited to {rpm} requests per minute.",
                              retry_after=retry_after)
        hits.append(at)
