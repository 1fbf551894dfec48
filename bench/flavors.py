"""What each native flavor's translation and auth add to a create and a poll.

Each flavor is driven directly (the gateway's own flavor object over its HTTP layer) against
its vendor's simulator, serially, and its median create and poll are printed beside the
``openai`` flavor's against the OpenAI-format simulator. The simulators share one server stack,
so the difference is the flavor's own work (building the body, auth, reading the answer),
within the noise of two loopback round trips.

    python bench/flavors.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.ledger.sizes import parse_size
from gateway.upstreams.flavor import CreateRequest
from gateway.upstreams.flavors import build
from gateway.upstreams.outcome import Unreachable
from gateway.upstreams.transport import UpstreamClient
from tests.support.servers import Simulator

MODELS = {"openai": "sora-2", "ark": "seedance-1-0-pro", "dashscope": "wan2.5-t2v-preview",
          "kling": "kling-v2-1", "gemini": "veo-3.1-generate-preview",
          "minimax": "MiniMax-Hailuo-02", "vidu": "viduq2"}
SECONDS = {"openai": 4, "ark": 5, "dashscope": 5, "kling": 5, "gemini": 8, "minimax": 6,
           "vidu": 5}
KLING_KEY = "bench-access-key:bench-secret-key-of-at-least-32-bytes"


def key_of(flavor: str) -> str:
    return KLING_KEY if flavor == "kling" else "sk-bench"


async def measure(flavor: str, sim: Simulator, calls: int) -> tuple[float, float]:
    client = UpstreamClient(httpx.Limits(max_connections=8))
    upstream = build(flavor, flavor, sim.base_url, client, 10.0)
    size = parse_size("768p" if flavor == "minimax" else "1280x720")
    assert size is not None
    request = CreateRequest(model=MODELS[flavor], prompt="bench [never]",
                            seconds=SECONDS[flavor], size=size, size_text=size.key)
    creates, polls = [], []
    try:
        for _ in range(calls):
            start = time.perf_counter()
            submitted = await upstream.create(request, key_of(flavor))
            creates.append(time.perf_counter() - start)
            start = time.perf_counter()
            outcome = await upstream.poll(submitted.upstream_id, submitted.poll_state,
                                          key_of(flavor))
            polls.append(time.perf_counter() - start)
            assert not isinstance(outcome, Unreachable), outcome
    finally:
        await client.aclose()
    return statistics.median(creates) * 1000, statistics.median(polls) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    sims = {flavor: Simulator(flavor=flavor, api_key=key_of(flavor)).spawn()
            for flavor in MODELS}
    try:
        for sim in sims.values():
            sim.ready()
        results = {flavor: asyncio.run(measure(flavor, sim, args.calls))
                   for flavor, sim in sims.items()}
    finally:
        for sim in sims.values():
            sim.stop()
    base_create, base_poll = results["openai"]
    print(f"{'flavor':<10} {'create p50':>11} {'added':>8} {'poll p50':>9} {'added':>8}")
    for flavor, (create, poll) in results.items():
        print(f"{flavor:<10} {create:>9.2f}ms {create - base_create:>+6.2f}ms "
              f"{poll:>7.2f}ms {poll - base_poll:>+6.2f}ms")


if __name__ == "__main__":
    main()
