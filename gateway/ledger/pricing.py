"""Money in integer micro-USD: its bounds, the one way an amount is read, the one rounding rule,
and prices, computed by one pure function."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from gateway.errors import InvalidRequest
from gateway.ledger.sizes import parse_size, rate_for

if TYPE_CHECKING:
    from gateway.config import PricingConfig, Settings

MICROS_PER_USD = 1_000_000
# The most any amount may be (a top-up, an opening balance, a job's price, a ledger entry) and
# the most a token may hold, balance and held together: USD 1,000,000,000. Nine thousand times
# below a 64-bit integer, so a bounded balance plus a bounded amount can never overflow the
# column (SQLite would turn it into a float); the database checks the same bounds.
MAX_MICROS = 10**15
MAX_USD = Decimal(MAX_MICROS) / MICROS_PER_USD
# A JSON number's digits without its sign or exponent, ASCII only, at most six decimals.
PLAIN_DECIMAL = r"(0|[1-9][0-9]*)(\.[0-9]{1,6})?"
_PLAIN_DECIMAL = re.compile(PLAIN_DECIMAL)
AMOUNT_HINT = ("must be a plain decimal amount of USD: ASCII digits, no leading zeros, at most "
               "6 decimals, no sign, exponent or spaces (e.g. 12.50)")


def parse_usd(value: object) -> Decimal:
    """Read an amount of USD written as a plain decimal within MAX_USD, else raise ValueError.

    Python would read "1_000", an Arabic-Indic digit, " 4" or "1e3" as numbers; an amount
    that only looks like one must be refused, not become money. A JSON number is read as it
    prints (5, 1.25), through the same check, so a float that is not what it shows is refused.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(AMOUNT_HINT)
    text = value if isinstance(value, str) else str(value)
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise ValueError(AMOUNT_HINT)
    amount = Decimal(text)
    if amount > MAX_USD:
        raise ValueError(f"must be at most {MAX_USD} USD, the most a token may hold")
    return amount


def usd_to_micros(usd: Decimal | str | int) -> int:
    """Round half up to the micro-dollar: the only rounding the gateway ever does."""
    value = Decimal(str(usd)) * MICROS_PER_USD
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{frac:06d}"


def price_micros(settings: Settings, *, group: str, billing_mode: str, model: str, size: str,
                 seconds: int | float, audio: bool = False,
                 pricing: PricingConfig | None = None) -> int:
    """The price of a job: per call, or per second at its size's rate (plus sound, if made).

    ``pricing`` is another table of the same shape (what an upstream charges the operator);
    the group's multiplier applies to the customer's price only.
    """
    table = pricing or settings.pricing
    multiplier = Decimal(1) if pricing is not None else settings.groups[group].multiplier
    if billing_mode == "per_call":
        per_call = table.per_call.get(model)
        if per_call is None:
            raise InvalidRequest(f"Model '{model}' is not offered per call.", param="model")
        return usd_to_micros(per_call * multiplier)
    parsed = parse_size(size)
    rate = rate_for(table.per_second.get(model, {}), parsed) if parsed else None
    if rate is None:
        raise InvalidRequest(f"Size '{size}' is not offered for model '{model}'.", param="size")
    if audio:
        sound = table.audio_per_second.get(model)
        if sound is None:
            raise InvalidRequest(f"Model '{model}' does not offer generated audio.",
                                 param="metadata")
        rate += sound
    return usd_to_micros(rate * Decimal(str(seconds)) * multiplier)


def cost_micros(settings: Settings, cost: PricingConfig, *, model: str, size: str,
                seconds: int | float, audio: bool) -> int | None:
    """What an upstream's own price table says a job cost the operator, if it prices it:
    per second when it has a per-second rate for the model, else per call."""
    mode = "per_second" if model in cost.per_second else "per_call"
    try:
        return price_micros(settings, group="", billing_mode=mode, model=model, size=size,
                            seconds=seconds, audio=audio and model in cost.audio_per_second,
                            pricing=cost)
    except InvalidRequest:
        return None
