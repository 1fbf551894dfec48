"""Flavor names to the module that speaks each one: a new vendor is one module and one line."""

from __future__ import annotations

from collections.abc import Callable

from gateway.upstreams.auth import Bearer
from gateway.upstreams.compat import CompatFlavor
from gateway.upstreams.flavor import Flavor
from gateway.upstreams.http import UpstreamHTTP
from gateway.upstreams.openai import OpenAIFlavor
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient

# (name, base_url, client, timeout_s, secrets) -> the flavor, with its auth and error dialect.
Factory = Callable[[str, str, UpstreamClient, float, UpstreamSecrets], Flavor]


def _openai(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
            secrets: UpstreamSecrets) -> Flavor:
    return OpenAIFlavor(UpstreamHTTP(name, base_url, client, timeout_s, Bearer(),
                                     secrets=secrets))


def _compat(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
            secrets: UpstreamSecrets) -> Flavor:
    return CompatFlavor(UpstreamHTTP(name, base_url, client, timeout_s, Bearer(),
                                     secrets=secrets))


FLAVORS: dict[str, Factory] = {"openai": _openai, "compat": _compat}
