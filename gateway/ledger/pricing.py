"""Prices in integer micro-USD, computed by one pure function with one rounding rule."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from gateway.config import Settings
from gateway.errors import InvalidRequest

MICROS_PER_USD = 1_000_000


def usd_to_micros(usd: Decimal | str | int) -> int:
    """Round half up to the micro-dollar: the only rounding the gateway ever does."""
    value = Decimal(str(usd)) * MICROS_PER_USD
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{frac:06d}"


def price_micros(settings: Settings, *, group: str, billing_mode: str, model: str, size: str,
                 seconds: int) -> int:
    multiplier = settings.groups[group].multiplier
    if billing_mode == "per_call":
        per_call = settings.pricing.per_call.get(model)
        if per_call is None:
            raise InvalidRequest(f"Model '{model}' is not offered per call.", param="model")
        return usd_to_micros(per_call * multiplier)
    per_size = settings.pricing.per_second.get(model, {})
    if size not in per_size:
        raise InvalidRequest(f"Size '{size}' is not offered for model '{model}'.", param="size")
    return usd_to_micros(per_size[size] * seconds * multiplier)
