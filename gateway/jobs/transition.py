"""The one decision a poll leads to: a job's next state and what happens to its money.

Pure: no database, no clock, no upstream. The tracker feeds it a job's state and a poll's
outcome and writes what it answers in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.upstreams.outcome import Completed, Failed, PollOutcome, Running, Unreachable

# Codes the gateway itself ends a job with.
EXPIRED = ("expired", "The job did not finish in the time allowed; its charge was refunded.")
FAILED = ("upstream_failed", "The video could not be generated; its charge was refunded.")


@dataclass(frozen=True)
class JobState:
    status: str
    progress: int
    hold_micros: int
    age_s: float
    max_age_s: float


@dataclass(frozen=True)
class Money:
    """How a hold ends: ``charged`` is captured, ``refunded`` goes back to the balance."""

    kind: Literal["capture", "refund"]
    charged: int
    refunded: int


@dataclass(frozen=True)
class Transition:
    status: str
    progress: int
    money: Money | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ends(self) -> bool:
        return self.money is not None


def decide(state: JobState, outcome: PollOutcome, *,
           rendered_micros: int | None = None) -> Transition | None:
    """The job's next state, or ``None`` when the poll changes nothing.

    ``rendered_micros`` is the price of what a completed job says it rendered, when it says;
    the capture is that price, never more than the hold, and the rest is refunded.
    """
    if isinstance(outcome, Completed):
        charged = state.hold_micros
        if rendered_micros is not None:
            charged = max(0, min(rendered_micros, state.hold_micros))
        return Transition("completed", 100,
                          Money("capture", charged, state.hold_micros - charged))
    if isinstance(outcome, Failed):
        return _refund(state, outcome.code or FAILED[0], outcome.message or FAILED[1])
    if state.age_s > state.max_age_s:
        # Only the vendor's explicit word ends a job early; past its age, the gateway does.
        return _refund(state, *EXPIRED)
    if isinstance(outcome, Unreachable):
        return None
    assert isinstance(outcome, Running)
    status = outcome.status
    if state.status == "in_progress" and status == "queued":
        status = "in_progress"  # a vendor's flicker back to queued is not news to a client
    # 100 while running is kept: a vendor that says the video is made but not yet stored has
    # made it, and a delete then must not refund what the vendor will bill (see delete).
    progress = max(0, min(100, outcome.progress))
    if status == state.status and progress == state.progress:
        return None
    return Transition(status, progress)


def _refund(state: JobState, code: str, message: str) -> Transition:
    return Transition("failed", state.progress, Money("refund", 0, state.hold_micros),
                      error_code=code, error_message=message)
