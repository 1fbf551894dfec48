"""What a poll of an upstream job found, as one of four tagged outcomes.

Each flavor reads its vendor's answer into one of these; nothing past the adapter sees the
vendor's words. The job's transition and its money follow from the outcome alone
(``gateway.jobs.transition.decide``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Asset:
    """One downloadable product of a finished job (``video``, ``thumbnail``, ``spritesheet``).

    ``url`` is where the vendor hands it out; ``None`` means it is fetched through the
    flavor's own content route with the upstream's key.
    """

    variant: str
    url: str | None = None
    expires_at: float | None = None


@dataclass(frozen=True)
class Running:
    status: Literal["queued", "in_progress"] = "in_progress"
    progress: int = 0


@dataclass(frozen=True)
class Completed:
    """Finished; with what the vendor says it rendered, when it says so."""

    assets: tuple[Asset, ...] = field(default_factory=tuple)
    seconds: float | None = None
    size: str | None = None
    audio: bool | None = None
    completed_at: float | None = None
    expires_at: float | None = None

    def asset(self, variant: str) -> Asset | None:
        return next((asset for asset in self.assets if asset.variant == variant), None)


@dataclass(frozen=True)
class Failed:
    """The vendor's explicit failure: ``code`` and ``message`` as a client may see them
    (through ``UpstreamHTTP.public``), ``raw`` as the vendor said it, for the operator."""

    code: str | None = None
    message: str | None = None
    raw: str | None = None


@dataclass(frozen=True)
class Unreachable:
    """The upstream could not be asked, or answered nothing usable: learn nothing."""

    reason: str


PollOutcome = Running | Completed | Failed | Unreachable
