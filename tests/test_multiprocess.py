"""Several gateway processes on one PostgreSQL database behave as one gateway."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_for
from tests.support.servers import Gateway, Simulator, base_config, upstream

pytestmark = pytest.mark.skipif(
    not os.environ.get("GATEWAY_TEST_POSTGRES_URL"),
    reason="needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL (CI does)",
)

PROCESSES = 3
CREATES = 200
AFFORDABLE = 50
PRICE_USD = "0.40"  # sora-2, 720x1280, 4 s


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[Gateway], Simulator]]:
    sim = Simulator(flavor="openai", duration_s=1.0).start()
    config = base_config([upstream("primary", sim, ["official"])],
                         jobs={"poll_interval_s": 0.5, "refresh_after_s": 0.2, "max_age_s": 600,
                               "lease_s": 3, "poll_after_ms": 100})
    first = Gateway(tmp_path, dict(config)).start()
    shared = {**config, "database_url": first.config["database_url"]}
    gateways = [first] + [Gateway(tmp_path, dict(shared)).start() for _ in range(PROCESSES - 1)]
    yield gateways, sim
    for gw in gateways:
        gw.stop()
    sim.stop()


def _create(url: str, token: str, prompt: str) -> int:
    response = httpx.post(f"{url}/v1/videos", headers={"Authorization": f"Bearer {token}"},
                          json={"prompt": prompt, "model": "sora-2", "seconds": "4"},
                          timeout=60)
    return response.status_code


class TestManyProcesses:
    def test_concurrent_creates_settle_exactly_once_with_a_process_killed(
            self, cluster: tuple[list[Gateway], Simulator]) -> None:
        gateways, sim = cluster
        token_id, token = gateways[0].create_token(balance_usd="20")
        run = uuid.uuid4().hex[:8]
        # Jobs run until told to end, so no money comes back while creates are racing.
        prompts = [f"{run} job {i} [never]" for i in range(CREATES)]

        with ThreadPoolExecutor(max_workers=40) as pool:
            statuses = list(pool.map(
                lambda i: _create(gateways[i % PROCESSES].url, token, prompts[i]),
                range(CREATES)))
        assert Counter(statuses) == {200: AFFORDABLE, 429: CREATES - AFFORDABLE}
        survivor = gateways[0]
        assert survivor.token(token_id)["held_usd"] == "20.000000"
        ours = sorted(uid for uid, job in sim.stats()["jobs"].items()
                      if job["prompt"].startswith(run))
        assert len(ours) == AFFORDABLE  # no job was submitted twice
        failing = set(ours[::3])
        for uid in ours[: AFFORDABLE // 2]:
            sim.finish(uid, "failed" if uid in failing else "completed")
        time.sleep(0.3)
        gateways[1].kill()  # mid-run: some jobs settled, others leased by the dead process
        for uid in ours[AFFORDABLE // 2:]:
            sim.finish(uid, "failed" if uid in failing else "completed")
        wait_for(lambda: survivor.token(token_id)["held_usd"] == "0.000000", timeout=60,
                 interval=0.5)

        ledger = survivor.ledger(token_id)
        kinds = Counter(entry["kind"] for entry in ledger)
        assert kinds["hold"] == AFFORDABLE
        assert kinds["capture"] + kinds["refund"] == AFFORDABLE
        assert kinds["release"] == 0
        settled = [e["job_id"] for e in ledger if e["kind"] in ("capture", "refund")]
        assert len(set(settled)) == AFFORDABLE
        survivor.assert_reconciles(token_id)
        with survivor.admin() as admin:
            report = admin.get("/admin/reconcile").json()
        assert report["ok"] is True

        stats = sim.stats()
        overlaps = {uid: n for uid, n in stats["max_concurrent_retrieves"].items()
                    if uid in ours and n > 1}
        assert overlaps == {}, f"jobs polled by two processes at once: {overlaps}"
        assert kinds["refund"] == len(failing)
        assert kinds["capture"] == AFFORDABLE - len(failing)

    def test_rpm_holds_across_processes(self, cluster: tuple[list[Gateway], Simulator]) -> None:
        gateways, _ = cluster
        _, token = gateways[0].create_token(balance_usd="100", rpm=10)

        with ThreadPoolExecutor(max_workers=30) as pool:
            statuses = list(pool.map(
                lambda i: _create(gateways[i % PROCESSES].url, token, f"rpm {i} [never]"),
                range(30)))

        assert Counter(statuses) == {200: 10, 429: 20}
