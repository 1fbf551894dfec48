"""The retry schedule of a failed delivery, and the settings that shape it."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.schedule import next_attempt_at

DAY = 86400.0
START = 1_700_000_000.0


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def waits(rng: random.Random | Fixed, **options: float) -> list[float]:
    """The waits before each retry of a receiver that never answers, until the schedule
    gives up."""
    now, attempts, result = START, 1, []
    while (at := next_attempt_at(START, attempts, now, rng, **options)) is not None:
        result.append(at - now)
        now, attempts = at, attempts + 1
    return result


class TestSchedule:
    def test_waits_double_up_to_the_cap(self) -> None:
        assert waits(Fixed(0.999999), base_s=10, cap_s=80, max_age_s=400) == pytest.approx(
            [10, 20, 40, 80, 80, 80, 80, 10], abs=1e-3)

    def test_jitter_keeps_each_wait_in_the_upper_half_of_its_step(self) -> None:
        for attempts in range(1, 12):
            ceiling = min(3600.0, 10.0 * 2 ** (attempts - 1))
            low = next_attempt_at(START, attempts, START, Fixed(0.0))
            high = next_attempt_at(START, attempts, START, Fixed(0.999999))
            assert low == START + ceiling / 2
            assert high == pytest.approx(START + ceiling, rel=1e-5)

    def test_waits_grow_whatever_the_draw_while_they_double(self) -> None:
        for seed in range(50):
            drawn = waits(random.Random(seed))
            doubling, capped = drawn[:9], drawn[9:-1]  # 10 s ... 2560 s, then the cap
            assert doubling == sorted(doubling)
            assert all(1800 <= wait < 3600 for wait in capped)

    def test_draws_spread_receivers_that_failed_together(self) -> None:
        rng = random.Random(7)
        firsts = {next_attempt_at(START, 3, START, rng) for _ in range(100)}
        assert len(firsts) > 90

    def test_it_gives_up_a_day_after_the_first_attempt(self) -> None:
        for seed in range(20):
            drawn = waits(random.Random(seed))
            assert sum(drawn) == pytest.approx(DAY)  # the last try is made at the deadline
            assert 30 < len(drawn) < 50
        assert next_attempt_at(START, 30, START + DAY, Fixed(0.5)) is None
        assert next_attempt_at(START, 30, START + DAY + 1, Fixed(0.5)) is None

    def test_a_retry_after_lengthens_a_wait_but_not_past_the_cap(self) -> None:
        rng = Fixed(0.0)
        assert next_attempt_at(START, 1, START, rng, retry_after_s=120) == START + 120
        assert next_attempt_at(START, 1, START, rng, retry_after_s=1) == START + 5
        assert next_attempt_at(START, 1, START, rng, retry_after_s=10**9) == START + 3600

    def test_the_deadline_bounds_a_retry_after_too(self) -> None:
        now = START + DAY - 60
        assert next_attempt_at(START, 30, now, Fixed(0.0), retry_after_s=3600) == START + DAY

    def test_a_huge_attempt_count_stays_at_the_cap(self) -> None:
        assert next_attempt_at(START, 10_000, START, Fixed(0.0)) == START + 1800

    def test_attempts_count_from_one(self) -> None:
        with pytest.raises(ValueError, match="attempts"):
            next_attempt_at(START, 0, START, Fixed(0.0))


class TestConfig:
    def test_defaults(self) -> None:
        config = WebhooksConfig()
        assert (config.allow_http, config.allow_private) == (False, False)
        assert (config.connect_timeout_s, config.timeout_s, config.max_age_s) == (3, 10, DAY)
        assert config.max_response_bytes == 4096

    def test_unknown_keys_are_refused_and_the_model_is_frozen(self) -> None:
        with pytest.raises(ValidationError, match="allow_privat"):
            WebhooksConfig(allow_privat=True)  # type: ignore[call-arg]
        with pytest.raises(ValidationError):
            WebhooksConfig().allow_http = True  # type: ignore[misc]

    @pytest.mark.parametrize(("options", "key"), [
        ({"connect_timeout_s": 20}, "connect_timeout_s"),
        ({"backoff_base_s": 7200}, "backoff_base_s"),
        ({"timeout_s": 60, "lease_s": 60}, "lease_s"),
        ({"timeout_s": 0}, "timeout_s"),
    ])
    def test_inconsistent_values_name_their_key(self, options: dict[str, float],
                                                key: str) -> None:
        with pytest.raises(ValidationError, match=key):
            WebhooksConfig(**options)
