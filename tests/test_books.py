"""One definition of each money figure: usage, /v1/me, the reconciliation and the CLI agree.

A token goes through every way a job can end (completed, failed, deleted, expired, lost in a
crash while it was being submitted, released because no upstream took it) with one job still
running; then every report of its money is read and compared, figure by figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import wait_for
from tests.support.servers import Gateway, Simulator, base_config, upstream

PRICE = "0.400000"  # every job here: sora-2, 720x1280, 4 s at 0.10 USD/s
FIGURES = ("charged_usd", "refunded_usd", "held_usd")


@dataclass(frozen=True)
class Books:
    gw: Gateway
    token_id: str
    token: str


def _ledger_notes(gw: Gateway, token_id: str, kind: str) -> list[str]:
    return sorted(e["note"] or "" for e in gw.ledger(token_id) if e["kind"] == kind)


def _lose_a_create_in_a_crash(gw: Gateway, token_id: str, token: str, prompt: str) -> None:
    """kill -9 the gateway while a create waits on its upstream, then start it again."""
    client = gw.client(token)
    outcome: list[object] = []
    holds = [e["kind"] for e in gw.ledger(token_id)].count("hold")

    def create() -> None:
        try:
            outcome.append(client.videos.create(prompt=prompt))
        except openai.APIError as exc:
            outcome.append(exc)

    creator = threading.Thread(target=create)
    creator.start()
    wait_for(lambda: [e["kind"] for e in gw.ledger(token_id)].count("hold") > holds, timeout=5)
    gw.kill()
    creator.join(timeout=10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], openai.APIConnectionError), outcome
    gw.start()


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator) -> Iterator[Books]:
    """A token's history with every ending. A lost create is given up on once no create call
    can still be running (2 x upstream timeout + lease = 5 s after it began), an unfinished job
    after 20 s: long enough for the restart after the crash and for the reads of the tests."""
    config = base_config([upstream("primary", simulator, ["official"], timeout_s=2)],
                         jobs={"poll_interval_s": 0.3, "refresh_after_s": 0.2, "max_age_s": 20,
                               "lease_s": 1, "poll_after_ms": 100})
    gw = Gateway(tmp_path_factory.mktemp("books"), config).start()
    try:
        token_id, token = gw.create_token(balance_usd="10")
        client = gw.client(token)
        run = uuid.uuid4().hex[:8]
        client.videos.create(prompt=f"books expired {run} [never]")
        done = client.videos.create_and_poll(prompt=f"books done {run} [duration:0.3]",
                                             poll_interval_ms=100)
        failed = client.videos.create_and_poll(prompt=f"books failed {run} [fail] "
                                               "[duration:0.3]", poll_interval_ms=100)
        assert (done.status, failed.status) == ("completed", "failed")
        deleted = client.videos.create(prompt=f"books deleted {run} [never]")
        client.videos.delete(deleted.id)
        with pytest.raises(openai.InternalServerError):
            client.videos.create(prompt=f"books released {run} [status:503]")
        _lose_a_create_in_a_crash(gw, token_id, token, f"books lost {run} [hang:10]")
        wait_for(lambda: len(_ledger_notes(gw, token_id, "refund")) == 4, timeout=40)
        gw.client(token).videos.create(prompt=f"books running {run} [never]")
        yield Books(gw, token_id, token)
    finally:
        gw.stop()


def _figures(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(row[name] for name in FIGURES)


def _cli_usage(gw: Gateway) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "usage", "--format", "json",
                             "--config", str(gw.config_path)], capture_output=True, text=True,
                            timeout=60, cwd=gw.workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


class TestEveryReportTellsTheSameStory:
    def test_the_history_has_every_ending(self, books: Books) -> None:
        gw, token_id = books.gw, books.token_id
        refunds = _ledger_notes(gw, token_id, "refund")
        assert len(refunds) == 4
        assert {"deleted", "expired", "submission_lost"} <= set(refunds)  # and the upstream's
        assert _ledger_notes(gw, token_id, "release") == ["upstream_error"]
        assert [e["kind"] for e in gw.ledger(token_id)].count("capture") == 1

    def test_reconcile_usage_me_and_the_cli_agree(self, books: Books) -> None:
        gw, token_id = books.gw, books.token_id
        headers = {"Authorization": f"Bearer {books.token}"}
        with gw.admin() as admin:
            reconcile = admin.get("/admin/reconcile").json()
            usage = {group_by: admin.get("/admin/usage", params={"group_by": group_by}).json()
                     for group_by in ("token", "group", "model", "upstream", "day")}
            by_token = admin.get("/admin/usage", params={"token_id": token_id}).json()
            token = admin.get(f"/admin/tokens/{token_id}").json()
        me = httpx.get(f"{gw.url}/v1/me", headers=headers).json()
        subscription = httpx.get(f"{gw.url}/v1/dashboard/billing/subscription",
                                 headers=headers).json()
        cli_usage = _cli_usage(gw)
        row = next(t for t in reconcile["tokens"] if t["token_id"] == token_id)

        # 1 capture; 5 refunds or releases; 1 job running.
        expected = ("0.400000", "2.000000", PRICE)
        assert reconcile["ok"] is True
        assert _figures(row) == expected
        assert _figures(reconcile["total"]) == expected
        for group_by, report in usage.items():
            assert _figures(report["total"]) == expected, group_by
        assert _figures(by_token["total"]) == expected
        assert _figures(by_token["data"][0]) == expected
        assert _figures(me["usage_this_month"]) == expected
        assert _figures(cli_usage["total"]) == expected
        assert (me["balance_usd"], me["held_usd"]) == (token["balance_usd"], token["held_usd"])
        assert (row["balance_usd"], row["held_usd"]) == ("9.200000", PRICE)
        assert token["held_usd"] == PRICE
        assert subscription["hard_limit_usd"] == 10.0  # balance + held + charged = top-ups

        # Every job that held money counts: 7 jobs, 1 completed, 5 failed, 1 running.
        counts = {(r["total"]["jobs"], r["total"]["completed"], r["total"]["failed"],
                   r["total"]["seconds"]) for r in [*usage.values(), by_token, cli_usage]}
        assert counts == {(7, 1, 5, 4)}
        month = me["usage_this_month"]
        assert (month["jobs"], month["completed"], month["failed"]) == (7, 1, 5)
        gw.assert_reconciles(token_id)
