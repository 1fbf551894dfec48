"""When a failed delivery is tried again: exponential backoff with jitter, for a bounded time."""

from __future__ import annotations

from typing import Protocol


class Rng(Protocol):
    def random(self) -> float: ...


def next_attempt_at(first_at: float, attempts: int, now: float, rng: Rng, *,
                    retry_after_s: float | None = None, base_s: float = 10.0,
                    cap_s: float = 3600.0, max_age_s: float = 86400.0) -> float | None:
    """The time of the next try after ``attempts`` failed ones, or None: give up.

    The n-th wait is drawn from [c/2, c), c = min(cap, base·2^(n-1)) ("equal jitter"), so
    receivers failing together are not retried in step, and while the waits double each is
    at least the longest the one before could have been. A receiver's Retry-After lengthens
    a wait, never past the cap. The last try is made at ``first_at + max_age_s``.
    """
    if attempts < 1:
        raise ValueError("attempts counts the tries made, at least one")
    deadline = first_at + max_age_s
    if now >= deadline:
        return None
    ceiling = min(cap_s, base_s * 2.0 ** min(attempts - 1, 64))
    delay = ceiling * (0.5 + 0.5 * rng.random())
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, cap_s))
    return min(now + delay, deadline)
