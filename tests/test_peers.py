"""An upstream's poll cap (jobs.poll_concurrency) holds across every process on one database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from gateway.jobs.limit import Limit
from gateway.jobs.peers import share
from tests.conftest import wait_for
from tests.support.observe import metric
from tests.support.servers import Gateway, Simulator, base_config, upstream

CAP = 2


class TestShare:
    def test_the_cap_is_divided_never_to_zero(self) -> None:
        assert [share(16, n) for n in (0, 1, 2, 3, 16, 40)] == [16, 16, 8, 5, 1, 1]


class TestLimit:
    def test_holders_never_exceed_the_capacity_as_it_changes(self) -> None:
        async def scenario() -> list[int]:
            limit, most, seen = Limit(3), 0, []
            release = asyncio.Event()

            async def hold() -> None:
                nonlocal most
                async with limit:
                    most = max(most, limit.held)
                    await release.wait()

            tasks = [asyncio.create_task(hold()) for _ in range(6)]
            await asyncio.sleep(0.01)
            seen.append(limit.held)  # 3 of 6
            limit.resize(5)
            await asyncio.sleep(0.01)
            seen.append(limit.held)  # 5: two waiters let in at once
            limit.resize(1)  # holders keep their place; nobody new gets in
            await asyncio.sleep(0.01)
            seen.append(limit.held)
            release.set()
            await asyncio.gather(*tasks)
            return [*seen, limit.held, most]

        assert asyncio.run(scenario()) == [3, 5, 5, 0, 5]

    def test_a_cancelled_waiter_leaves_no_slot_taken(self) -> None:
        async def scenario() -> int:
            limit = Limit(1)
            async with limit:
                waiter = asyncio.create_task(limit.__aenter__())
                await asyncio.sleep(0.01)
                waiter.cancel()
                await asyncio.gather(waiter, return_exceptions=True)
            async with limit:  # would wait forever if the cancelled waiter kept a slot
                return limit.held

        assert asyncio.run(asyncio.wait_for(scenario(), 5)) == 1


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Gateway, Gateway, Simulator]]:
    sim = Simulator(flavor="openai", duration_s=1.0).start()
    config = base_config([upstream("primary", sim, ["official"])],
                         jobs={"poll_interval_s": 0.2, "refresh_after_s": 3600,
                               "max_age_s": 600, "lease_s": 5, "poll_after_ms": 100,
                               "poll_concurrency": CAP})
    first = Gateway(tmp_path, dict(config)).start()
    second = Gateway(tmp_path, {**config, "database_url": first.config["database_url"]}).start()
    yield first, second, sim
    for gw in (first, second):
        gw.stop()
    sim.stop()


def test_two_processes_share_one_upstreams_poll_cap(
        pair: tuple[Gateway, Gateway, Simulator]) -> None:
    first, second, sim = pair
    for gw in (first, second):
        wait_for(lambda gw=gw: metric(gw, "gateway_processes") == 2, timeout=15)
    _, token = first.create_token(balance_usd="20")
    client = OpenAI(base_url=f"{first.url}/v1", api_key=token, max_retries=0)
    run = uuid.uuid4().hex[:8]
    # Slow polls of jobs that never end keep both processes at their share the whole time.
    for n in range(8):
        client.videos.create(prompt=f"{run} shared cap {n} [never] [poll-delay:0.4]")
    ours = [uid for uid, job in sim.stats()["jobs"].items() if job["prompt"].startswith(run)]
    assert len(ours) == 8
    wait_for(lambda: min(sim.stats()["retrieves"].get(uid, 0) for uid in ours) >= 3,
             timeout=60, interval=0.3)

    # Each process polled with its half, so the upstream saw the cap at once and never more.
    assert sim.stats()["most_retrieving"] == CAP

    second.stop()  # a clean stop leaves the list at once: the survivor takes the whole cap
    wait_for(lambda: metric(first, "gateway_processes") == 1, timeout=15)
