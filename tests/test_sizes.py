"""Sizes as clients write them, and how a price table keyed by sizes or tiers rates them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.ledger.sizes import Size, offered, parse_size, rate_for


class TestParseSize:
    @pytest.mark.parametrize(("text", "key", "tier"), [
        ("1280x720", "1280x720", "720p"),
        ("720X1280", "720x1280", "720p"),
        ("1920*1080", "1920x1080", "1080p"),
        ("832*480", "832x480", "480p"),
        ("720p", "720p", "720p"),
        ("1080P", "1080p", "1080p"),
        ("768P", "768p", "768p"),
        ("4k", "2160p", "2160p"),
    ])
    def test_accepted_spellings(self, text: str, key: str, tier: str) -> None:
        size = parse_size(text)
        assert size is not None
        assert (size.key, size.tier) == (key, tier)

    @pytest.mark.parametrize("text", ["", "1280", "1280x", "x720", "0x720", "1280 x 720",
                                      " 720p", "720pp", "p720", "1280x720x3",
                                      "\u0661\u0662\u0668\u0660x720", "1_280x720", "-720p",
                                      "12345678x1"])
    def test_refused_spellings(self, text: str) -> None:
        assert parse_size(text) is None

    def test_orientation_and_ratio(self) -> None:
        assert parse_size("1280x720") == Size(short=720, width=1280, height=720)
        landscape, portrait, tier = parse_size("1280x720"), parse_size("720x1280"), parse_size(
            "720p")
        assert landscape is not None
        assert portrait is not None
        assert tier is not None
        assert (landscape.landscape, portrait.landscape, tier.landscape) == (True, False, None)
        assert (landscape.aspect_ratio, portrait.aspect_ratio) == ("16:9", "9:16")
        assert tier.aspect_ratio is None


BY_SIZE = {"720x1280": Decimal("0.10"), "1280x720": Decimal("0.10"),
           "1024x1792": Decimal("0.50"), "1792x1024": Decimal("0.40")}
BY_TIER = {"480p": Decimal("0.05"), "720P": Decimal("0.10"), "1080p": Decimal("0.20")}


class TestRateFor:
    by_size = BY_SIZE
    by_tier = BY_TIER

    def rate(self, table: dict[str, Decimal], text: str) -> Decimal | None:
        size = parse_size(text)
        assert size is not None
        return rate_for(table, size)

    def test_exact_key(self) -> None:
        assert self.rate(self.by_size, "1792x1024") == Decimal("0.40")
        assert self.rate(self.by_size, "1792*1024") == Decimal("0.40")

    def test_size_matches_its_tier_by_short_side(self) -> None:
        assert self.rate(self.by_tier, "1280x720") == Decimal("0.10")
        assert self.rate(self.by_tier, "1080x1920") == Decimal("0.20")
        assert self.rate(self.by_tier, "832*480") == Decimal("0.05")
        assert self.rate(self.by_tier, "1080P") == Decimal("0.20")

    def test_tier_of_a_size_table_takes_the_highest_of_its_sizes(self) -> None:
        assert self.rate(self.by_size, "720p") == Decimal("0.10")
        assert self.rate(self.by_size, "1024p") == Decimal("0.50")

    def test_unpriced(self) -> None:
        assert self.rate(self.by_size, "1920x1080") is None
        assert self.rate(self.by_tier, "1440p") is None
        assert self.rate(self.by_tier, "2000x1440") is None

    def test_offered(self) -> None:
        assert offered(self.by_tier, "1280*720") == parse_size("1280x720")
        assert offered(self.by_tier, "999x999") is None
        assert offered(self.by_tier, "banana") is None
