"""Upstream selection: weighted order among a group's upstreams, failover at create."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from gateway.config import Settings, UpstreamConfig
from gateway.errors import NoUpstream, UpstreamFailed, UpstreamOutcomeUnknown, UpstreamRejected
from gateway.metrics import UPSTREAM_FAILOVERS
from gateway.upstreams.base import (
    UpstreamAmbiguous,
    UpstreamRefused,
    UpstreamUnavailable,
)
from gateway.upstreams.breaker import Breaker
from gateway.upstreams.flavor import CREATE, Flavor
from gateway.upstreams.flavors import build
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient

log = logging.getLogger("gateway.upstreams")

T = TypeVar("T")


@dataclass(frozen=True)
class Placement:
    """Where a job lives: the upstream and the key that created it."""

    upstream: UpstreamConfig
    key_index: int

    @property
    def key(self) -> str:
        keys = self.upstream.keys
        return keys[self.key_index % len(keys)]


def _secrets(upstream: UpstreamConfig) -> UpstreamSecrets:
    # A vendor's name for one of our models is its own word; our public names are not secret.
    vendor_models = [name for model, name in upstream.model_map.items() if name != model]
    return UpstreamSecrets.of(name=upstream.name, base_url=upstream.base_url,
                              keys=upstream.keys, models=vendor_models)


def _rejected(exc: UpstreamRefused) -> UpstreamRejected:
    return UpstreamRejected(exc.message, status=exc.status, param=exc.param, code=exc.code,
                            upstream_error=exc.raw)


def _client(upstream: UpstreamConfig) -> UpstreamClient:
    # httpcore scans every pooled connection on each request, so one small pool per upstream
    # costs far less per call than one large pool shared by all of them.
    limits = httpx.Limits(max_connections=upstream.max_connections,
                          max_keepalive_connections=min(64, upstream.max_connections),
                          keepalive_expiry=30)
    return UpstreamClient(limits)


class UpstreamPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.configs = {upstream.name: upstream for upstream in settings.upstreams}
        self.clients = {upstream.name: _client(upstream) for upstream in settings.upstreams}
        self.flavors: dict[str, Flavor] = {
            upstream.name: build(upstream.flavor, upstream.name, upstream.base_url,
                                 self.clients[upstream.name], upstream.timeout_s,
                                 _secrets(upstream))
            for upstream in settings.upstreams
        }
        self.breakers = {
            upstream.name: Breaker(upstream.breaker_failures, upstream.breaker_cooldown_s)
            for upstream in settings.upstreams
        }
        self._key_cycles = {
            upstream.name: itertools.cycle(range(len(upstream.keys)))
            for upstream in settings.upstreams
        }

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    def flavor(self, name: str) -> Flavor:
        return self.flavors[name]

    def placement(self, name: str, key_index: int | None) -> Placement:
        return Placement(self.configs[name], key_index or 0)

    def eligible(self, group: str, model: str,
                 needs: frozenset[str] = frozenset({CREATE})) -> list[UpstreamConfig]:
        """The group's upstreams that serve the model and can do everything ``needs`` names."""
        return [
            upstream for upstream in self.settings.upstreams
            if group in upstream.groups and model in upstream.models and upstream.weight > 0
            and needs <= self.flavors[upstream.name].capabilities
        ]

    def serves(self, group: str, model: str,
               needs: frozenset[str] = frozenset({CREATE})) -> bool:
        return bool(self.eligible(group, model, needs))

    def ordered(self, group: str, model: str,
                needs: frozenset[str] = frozenset({CREATE})) -> list[UpstreamConfig]:
        """Eligible upstreams in a weighted random order, each at most once.

        Upstreams whose circuit is open are left out, unless every one is: then all are
        tried, since refusing outright would fail a create that might have succeeded.
        """
        eligible = self.eligible(group, model, needs)
        remaining = [u for u in eligible if self.breakers[u.name].available()] or eligible
        order: list[UpstreamConfig] = []
        while remaining:
            pick = random.choices(remaining, weights=[u.weight for u in remaining])[0]
            order.append(pick)
            remaining.remove(pick)
        return order

    def _next_key(self, upstream: UpstreamConfig) -> Placement:
        return Placement(upstream, next(self._key_cycles[upstream.name]))

    async def submit(
        self, group: str, model: str, call: Callable[[Flavor, Placement], Awaitable[T]],
        needs: frozenset[str] = frozenset({CREATE}),
    ) -> tuple[Placement, T]:
        """Run ``call`` on eligible upstreams in order until one accepts the job."""
        candidates = self.ordered(group, model, needs)
        if not candidates:
            raise NoUpstream(f"No upstream serves model '{model}' for this token's group.")
        for upstream in candidates:
            placement = self._next_key(upstream)
            breaker = self.breakers[upstream.name]
            try:
                result = await call(self.flavors[upstream.name], placement)
            except UpstreamUnavailable as exc:
                breaker.failed()
                UPSTREAM_FAILOVERS.labels(upstream.name).inc()
                log.warning("create failed over", extra={"upstream": upstream.name,
                                                         "reason": str(exc),
                                                         "circuit": breaker.state})
                continue
            except UpstreamRefused as exc:
                breaker.succeeded()  # it answered: the upstream is healthy, the request not
                raise _rejected(exc) from exc
            except UpstreamAmbiguous as exc:
                breaker.failed()
                # The upstream may hold a job now; sending it elsewhere could make two.
                log.error("create outcome unknown", extra={"upstream": upstream.name,
                                                           "reason": str(exc)})
                raise UpstreamOutcomeUnknown(
                    "The upstream provider did not answer in time; nothing was charged.",
                ) from exc
            breaker.succeeded()
            return placement, result
        raise UpstreamFailed("Every upstream provider failed; nothing was charged. Try again.")

    async def at(
        self, name: str, key_index: int | None,
        call: Callable[[Flavor, Placement], Awaitable[T]],
    ) -> tuple[Placement, T]:
        """Run ``call`` on one given upstream (remix goes where its source lives)."""
        placement = self.placement(name, key_index)
        try:
            return placement, await call(self.flavors[name], placement)
        except UpstreamRefused as exc:
            raise _rejected(exc) from exc
        except UpstreamUnavailable as exc:
            log.warning("upstream call failed", extra={"upstream": name, "reason": str(exc)})
            raise UpstreamFailed("The upstream provider failed; nothing was charged.") from exc
        except UpstreamAmbiguous as exc:
            log.error("upstream outcome unknown", extra={"upstream": name, "reason": str(exc)})
            raise UpstreamOutcomeUnknown(
                "The upstream provider did not answer in time; nothing was charged.",
            ) from exc
