"""The native flavors as the service holds them, over a client of a test's own, against the
vendor simulators: requests each simulator accepts, polling to the end, and downloads."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from gateway.ledger.sizes import parse_size
from gateway.upstreams.flavor import CreateRequest, Flavor, Image, Submitted
from gateway.upstreams.flavors import FACTORIES
from gateway.upstreams.outcome import Completed, PollOutcome, Running
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient
from tests.support.servers import Simulator
from tests.support.vendors import KEY, KLING_AK, KLING_SK, SIZE, VEO, png_base64

T = TypeVar("T")
LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=30)
PNG = base64.b64decode(png_base64())


@dataclass(frozen=True)
class Case:
    """What each vendor's simulator accepts: models, a duration and a size it renders."""

    model: str
    image_model: str
    seconds: int
    size: str


CASES = {
    "ark": Case("doubao-seedance-1-5-pro-251215", "doubao-seedance-1-5-pro-251215", 5,
                "1280x720"),
    "dashscope": Case("wan2.5-t2v-preview", "wan2.5-i2v-preview", 5, "1280x720"),
    "kling": Case("kling-v2-1-master", "kling-v2-1-master", 5, "1280x720"),
    "gemini": Case(VEO, VEO, 8, "1280x720"),
    "minimax": Case("MiniMax-Hailuo-2.3", "MiniMax-Hailuo-2.3", 6, "1366x768"),
    "vidu": Case("viduq2", "viduq2", 5, "1280x720"),
}


def vendor_key(flavor: str) -> str:
    """The one key each test simulator accepts (Kling's is an ACCESS:SECRET pair)."""
    return f"{KLING_AK}:{KLING_SK}" if flavor == "kling" else KEY


def create_request(flavor: str, prompt: str, *, image: bool = False, audio: bool = False,
                   metadata: Mapping[str, object] | None = None) -> CreateRequest:
    case = CASES[flavor]
    size = parse_size(case.size)
    assert size is not None
    return CreateRequest(
        model=case.image_model if image else case.model, prompt=f"{prompt} [size:{SIZE}]",
        seconds=case.seconds, size=size, size_text=case.size,
        image=Image(data=PNG, content_type="image/png") if image else None,
        metadata=metadata or {}, audio=audio)


@asynccontextmanager
async def opened(sim: Simulator, seen: list[httpx.Request] | None = None,
                 ) -> AsyncIterator[Flavor]:
    """The flavor as the service holds it, over a client of its own for this test."""
    async with UpstreamClient(LIMITS) as client:
        if seen is not None:
            async def record(request: httpx.Request) -> None:
                seen.append(request)

            client.event_hooks = {"request": [record]}
        secrets = UpstreamSecrets.of(name=sim.name, base_url=sim.base_url,
                                     keys=[vendor_key(sim.flavor)])
        yield FACTORIES[sim.flavor](sim.name, sim.base_url, client, 5.0, secrets)


def run(sim: Simulator, scenario: Callable[[Flavor], Awaitable[T]],
        seen: list[httpx.Request] | None = None) -> T:
    async def main() -> T:
        async with opened(sim, seen) as flavor:
            return await scenario(flavor)

    return asyncio.run(main())


async def settled(flavor: Flavor, job: Submitted, key: str, timeout: float = 5.0,
                  ) -> PollOutcome:
    """Poll until the job leaves Running (or the time is up): the last outcome."""
    deadline = time.monotonic() + timeout
    while True:
        found = await flavor.poll(job.upstream_id, job.poll_state, key)
        if not isinstance(found, Running) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def fetch(flavor: Flavor, job: Submitted, key: str, url: str | None, *,
                variant: str = "video", range_header: str | None = None,
                ) -> tuple[int, str | None, bytes]:
    async with flavor.content(job.upstream_id, job.poll_state, key, variant=variant, url=url,
                              range_header=range_header) as stream:
        body = b"".join([chunk async for chunk in stream.chunks])
        return stream.status, stream.content_range, body


def asset_url(outcome: PollOutcome, variant: str = "video") -> str | None:
    assert isinstance(outcome, Completed), outcome
    asset = outcome.asset(variant)
    assert asset is not None
    return asset.url


def sent_body(sim: Simulator, job: Submitted) -> dict[str, Any]:
    return sim.job(job.upstream_id)["request"]  # type: ignore[no-any-return]
