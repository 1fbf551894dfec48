"""Video sizes as clients and vendors write them: ``WxH``, ``W*H`` or a resolution tier.

Prices may be keyed by exact sizes (``1280x720``) or by tiers (``720p``); a size belongs to the
tier of its short side, so ``1280x720`` and ``720x1280`` are both ``720p``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

_EXACT = re.compile(r"([1-9][0-9]{1,4})[xX*]([1-9][0-9]{1,4})")
_TIER = re.compile(r"([1-9][0-9]{2,3})[pP]")
# Shorthands vendors use for tiers (MiniMax writes "768P", Veo "4k").
_NAMED = {"2k": 1440, "4k": 2160}


@dataclass(frozen=True)
class Size:
    """A parsed size: exact pixel dimensions, or a tier with no orientation."""

    short: int
    width: int | None = None
    height: int | None = None

    @property
    def exact(self) -> bool:
        return self.width is not None

    @property
    def tier(self) -> str:
        return f"{self.short}p"

    @property
    def key(self) -> str:
        """The canonical spelling: ``1280x720`` or ``720p``."""
        return f"{self.width}x{self.height}" if self.exact else self.tier

    @property
    def landscape(self) -> bool | None:
        if self.width is None or self.height is None:
            return None
        return self.width >= self.height

    @property
    def aspect_ratio(self) -> str | None:
        """``16:9``-style ratio in lowest terms (``None`` for a tier)."""
        if self.width is None or self.height is None:
            return None
        a, b = self.width, self.height
        while b:
            a, b = b, a % b
        return f"{self.width // a}:{self.height // a}"


def parse_size(text: str) -> Size | None:
    """``1280x720``, ``1280*720``, ``720p``, ``720P``, ``4k``; ``None`` when it is none of them."""
    if not isinstance(text, str):
        return None
    if match := _EXACT.fullmatch(text):
        width, height = int(match.group(1)), int(match.group(2))
        return Size(short=min(width, height), width=width, height=height)
    if match := _TIER.fullmatch(text):
        return Size(short=int(match.group(1)))
    if (named := _NAMED.get(text.lower())) is not None:
        return Size(short=named)
    return None


def rate_for(table: Mapping[str, Decimal], size: Size) -> Decimal | None:
    """The rate a price table gives a size: its exact key, else its tier's key.

    A tier asked of a table keyed by exact sizes takes the highest rate among that tier's
    sizes: the client did not say which, and the hold must cover whichever is rendered.
    """
    keyed = {parsed.key: rate for key, rate in table.items()
             if (parsed := parse_size(key)) is not None}
    if size.key in keyed:
        return keyed[size.key]
    if size.exact and size.tier in keyed:
        return keyed[size.tier]
    if not size.exact:
        rates = [rate for key, rate in keyed.items()
                 if (parsed := parse_size(key)) is not None and parsed.short == size.short]
        if rates:
            return max(rates)
    return None


def offered(table: Mapping[str, Decimal], text: str) -> Size | None:
    """The parsed size if the table prices it, else ``None``."""
    size = parse_size(text.strip()) if isinstance(text, str) else None
    if size is None or rate_for(table, size) is None:
        return None
    return size
