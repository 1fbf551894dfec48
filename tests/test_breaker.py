"""The circuit breaker's state machine, driven with explicit clock readings."""

from __future__ import annotations

from gateway.upstreams.breaker import Breaker


class TestBreaker:
    def test_opens_after_consecutive_failures_only(self) -> None:
        breaker = Breaker(failures=3, cooldown_s=10)
        breaker.failed(at=0)
        breaker.failed(at=0)
        breaker.succeeded()
        breaker.failed(at=0)
        breaker.failed(at=0)
        assert breaker.available(at=1)
        breaker.failed(at=1)
        assert breaker.state == "open"
        assert not breaker.available(at=5)

    def test_lets_one_probe_through_after_the_cooldown(self) -> None:
        breaker = Breaker(failures=1, cooldown_s=10)
        breaker.failed(at=0)
        assert breaker.available(at=10)
        assert breaker.state == "half_open"
        assert not breaker.available(at=11)

    def test_failed_probe_reopens_and_successful_probe_closes(self) -> None:
        breaker = Breaker(failures=1, cooldown_s=10)
        breaker.failed(at=0)
        assert breaker.available(at=10)
        breaker.failed(at=10)
        assert not breaker.available(at=15)
        assert breaker.available(at=20)
        breaker.succeeded()
        assert breaker.state == "closed"
        assert breaker.available(at=20)

    def test_a_probe_that_never_reports_back_expires(self) -> None:
        breaker = Breaker(failures=1, cooldown_s=10)
        breaker.failed(at=0)
        assert breaker.available(at=10)
        assert not breaker.available(at=19)
        assert breaker.available(at=20)
