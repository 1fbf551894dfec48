"""Every flavor by name: each builds its own HTTP layer, with the auth strategy and the error
dialect its vendor needs, from what the configuration gives an upstream. A new vendor is one
module and one line here."""

from __future__ import annotations

from typing import Protocol

from gateway.upstreams import ark, compat, dashscope, gemini, kling, minimax, openai, vidu
from gateway.upstreams.flavor import Flavor
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient


class FlavorFactory(Protocol):
    def __call__(self, name: str, base_url: str, client: UpstreamClient, timeout_s: float,
                 secrets: UpstreamSecrets | None = None) -> Flavor: ...


FACTORIES: dict[str, FlavorFactory] = {
    "openai": openai.make,
    "compat": compat.make,
    "ark": ark.make,
    "dashscope": dashscope.make,
    "kling": kling.make,
    "gemini": gemini.make,
    "minimax": minimax.make,
    "vidu": vidu.make,
}


def build(flavor: str, name: str, base_url: str, client: UpstreamClient, timeout_s: float,
          secrets: UpstreamSecrets | None = None) -> Flavor:
    try:
        factory = FACTORIES[flavor]
    except KeyError:
        known = ", ".join(sorted(FACTORIES))
        raise ValueError(f"unknown flavor {flavor!r}; expected one of {known}") from None
    return factory(name, base_url, client, timeout_s, secrets)
