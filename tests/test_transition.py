"""The pure decision of a job's next state and its money from a poll's outcome."""

from __future__ import annotations

import pytest

from gateway.jobs.transition import JobState, Money, Transition, decide
from gateway.upstreams.outcome import Asset, Completed, Failed, Running, Unreachable


def state(status: str = "queued", progress: int = 0, *, hold: int = 800_000,
          age: float = 10.0) -> JobState:
    return JobState(status=status, progress=progress, hold_micros=hold, age_s=age,
                    max_age_s=3600.0)


class TestCompleted:
    def test_captures_the_hold(self) -> None:
        assert decide(state(), Completed()) == Transition(
            "completed", 100, Money("capture", 800_000, 0))

    def test_settles_on_what_was_rendered(self) -> None:
        done = decide(state(), Completed(seconds=5.0), rendered_micros=500_000)
        assert done is not None
        assert done.money == Money("capture", 500_000, 300_000)

    def test_never_captures_more_than_the_hold(self) -> None:
        done = decide(state(), Completed(seconds=12.0), rendered_micros=1_200_000)
        assert done is not None
        assert done.money == Money("capture", 800_000, 0)

    def test_even_past_its_age(self) -> None:
        done = decide(state(age=1e9), Completed())
        assert done is not None
        assert done.status == "completed"

    def test_assets(self) -> None:
        done = Completed(assets=(Asset("video", "https://v"), Asset("thumbnail")))
        assert done.asset("thumbnail") == Asset("thumbnail")
        assert done.asset("spritesheet") is None


class TestFailed:
    def test_refunds_in_full_with_the_vendor_words(self) -> None:
        ended = decide(state("in_progress", 40), Failed("E1", "bad"))
        assert ended == Transition("failed", 40, Money("refund", 0, 800_000),
                                   error_code="E1", error_message="bad")

    def test_without_words(self) -> None:
        ended = decide(state(), Failed())
        assert ended is not None
        assert ended.error_code == "upstream_failed"
        assert ended.money == Money("refund", 0, 800_000)


class TestStillRunning:
    def test_progress(self) -> None:
        assert decide(state(), Running("in_progress", 36)) == Transition("in_progress", 36)

    def test_unchanged_is_nothing(self) -> None:
        assert decide(state("in_progress", 36), Running("in_progress", 36)) is None

    def test_unreachable_is_nothing(self) -> None:
        assert decide(state("in_progress", 36), Unreachable("timeout")) is None

    def test_progress_is_bounded(self) -> None:
        assert decide(state(), Running("in_progress", 250)) == Transition("in_progress", 100)
        assert decide(state("in_progress", 5), Running("in_progress", -3)) == Transition(
            "in_progress", 0)

    def test_a_vendor_at_100_while_running_is_kept(self) -> None:
        assert decide(state("in_progress", 99), Running("in_progress", 100)) == Transition(
            "in_progress", 100)

    def test_no_flicker_back_to_queued(self) -> None:
        assert decide(state("in_progress", 10), Running("queued", 10)) is None

    @pytest.mark.parametrize("outcome", [Running("queued", 0), Unreachable("down")])
    def test_past_its_age_it_is_refunded(self, outcome: Running | Unreachable) -> None:
        ended = decide(state(age=3601.0), outcome)
        assert ended is not None
        assert (ended.status, ended.error_code) == ("failed", "expired")
        assert ended.money == Money("refund", 0, 800_000)
        assert ended.ends
