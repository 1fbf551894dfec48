"""A stateful model of one token's money, driven at random against a real gateway process.

Hypothesis picks sequences of creates (any offered model, size and seconds; jobs that complete,
fail, never end, are refused by the upstream or meet a 503), forced finishes on the upstream,
deletes, top-ups and SIGKILL restarts of the gateway on the same database. After every step the
books are checked through the admin API; when an example ends every job is driven to its end and
each must have been settled exactly once, in the way its final status says.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import openai
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from openai import OpenAI
from openai.types import Video

from tests.conftest import wait_for
from tests.support.servers import Gateway, Simulator, upstream

ZERO = Decimal(0)
SETTLING = ("capture", "refund", "release")
# (model, size) pairs the gateway offers, with the per-second price of each.
PER_SECOND = {
    ("sora-2", "720x1280"): Decimal("0.10"), ("sora-2", "1280x720"): Decimal("0.10"),
    ("sora-2-pro", "720x1280"): Decimal("0.30"), ("sora-2-pro", "1280x720"): Decimal("0.30"),
    ("sora-2-pro", "1024x1792"): Decimal("0.50"), ("sora-2-pro", "1792x1024"): Decimal("0.50"),
}
PER_CALL = {"sora-2": Decimal("0.15"), "sora-2-pro": Decimal("0.60")}
SECONDS = (4, 8, 12)
# How the upstream treats a job: runs to completion, fails, never ends, refuses it, errors.
BEHAVIOURS = ("", "[fail]", "[never]", "[reject]", "[status:503]")
SETTINGS = settings(max_examples=5, stateful_step_count=15, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow])


def usd(value: str) -> Decimal:
    return Decimal(value)


def sums(ledger: list[dict[str, Any]]) -> dict[str, Decimal]:
    """Total amount per entry kind."""
    totals = dict.fromkeys(("topup", "hold", *SETTLING), ZERO)
    for entry in ledger:
        totals[entry["kind"]] += usd(entry["amount_usd"])
    return totals


def attempt(call: Callable[[], Video]) -> Video | openai.APIStatusError:
    """The call's result, or the API error it raised (connection errors still propagate)."""
    try:
        return call()
    except openai.APIStatusError as exc:
        return exc


@dataclass
class ModelJob:
    """What the model knows about one video the gateway accepted."""

    video_id: str
    upstream_id: str
    price: Decimal
    behaviour: str
    deleted: bool = False
    terminal: str | None = None  # the first final status a client saw


class LedgerBooks(RuleBasedStateMachine):
    gw: ClassVar[Gateway]
    sim: ClassVar[Simulator]

    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.token_id: str | None = None
        self.billing_mode = "per_second"
        self.client: OpenAI | None = None
        self.topups = ZERO
        self.model: dict[str, ModelJob] = {}
        self.refused = 0  # creates the upstream refused or failed: each held and released
        self.restarts = 0
        self.http = self.gw.admin()  # one keep-alive admin connection for the many reads

    # -- helpers -------------------------------------------------------------------------------
    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code < 300, (method, path, response.text)
        return response.json()

    def ledger(self) -> list[dict[str, Any]]:
        page = self.admin("GET", f"/admin/tokens/{self.token_id}/ledger", params={"limit": 1000})
        assert page["has_more"] is False
        return page["data"]  # type: ignore[no-any-return]

    def state(self) -> tuple[Decimal, Decimal, list[dict[str, Any]]]:
        """(balance, held, ledger) as one consistent snapshot.

        The token and its ledger are two admin calls and jobs settle in the background, so the
        token is read between two reads of the ledger and kept only when the ledger did not
        change meanwhile (each settlement moves money and appends its entry in one transaction).
        """
        assert self.token_id is not None
        for _ in range(100):
            before = self.ledger()
            token = self.admin("GET", f"/admin/tokens/{self.token_id}")
            ledger = self.ledger()
            if ledger == before:
                return usd(token["balance_usd"]), usd(token["held_usd"]), ledger
        raise AssertionError("the ledger never held still long enough to be read")

    def reconcile_row(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """This token's row of the operator's reconciliation, read while nothing settled."""
        assert self.token_id is not None
        for _ in range(100):
            before = self.ledger()
            report = self.admin("GET", "/admin/reconcile")
            if self.ledger() == before:
                [row] = [row for row in report["tokens"] if row["token_id"] == self.token_id]
                return row, before
        raise AssertionError("the ledger never held still long enough to be read")

    def price(self, model: str, size: str, seconds: int) -> Decimal:
        if self.billing_mode == "per_call":
            return PER_CALL[model]
        return PER_SECOND[(model, size)] * seconds

    def upstream_id(self, prompt: str) -> str:
        found = [uid for uid, job in self.sim.stats()["jobs"].items() if job["prompt"] == prompt]
        assert len(found) == 1, (prompt, found)
        return found[0]

    @property
    def sdk(self) -> OpenAI:
        assert self.client is not None
        return self.client

    # -- rules ---------------------------------------------------------------------------------
    @initialize(target=jobs, billing_mode=st.sampled_from(["per_second", "per_call"]),
                balance=st.sampled_from(["2", "3.5", "6"]),
                opening=st.lists(st.tuples(st.sampled_from(sorted(PER_SECOND)),
                                           st.sampled_from(SECONDS),
                                           st.sampled_from(BEHAVIOURS),
                                           st.sampled_from(["0.3", "1", "3"])),
                                 min_size=2, max_size=4))
    def open_account(self, billing_mode: str, balance: str,
                     opening: list[tuple[tuple[str, str], int, str, str]]) -> Any:
        """A token, and a few jobs to start with so every history has something to settle."""
        self.billing_mode = billing_mode
        self.token_id, plaintext = self.gw.create_token(group="budget", billing_mode=billing_mode,
                                                        balance_usd=balance)
        self.client = self.gw.client(plaintext)
        self.topups = usd(balance)
        created = [self.create(*job) for job in opening]
        return multiple(*[result for result in created if isinstance(result, str)])

    @rule(target=jobs, offer=st.sampled_from(sorted(PER_SECOND)),
          seconds=st.sampled_from(SECONDS), behaviour=st.sampled_from(BEHAVIOURS),
          duration=st.sampled_from(["0.3", "1", "3"]))
    def create(self, offer: tuple[str, str], seconds: int, behaviour: str,
               duration: str) -> Any:
        model, size = offer
        price = self.price(model, size, seconds)
        prompt = f"books {uuid.uuid4().hex} {behaviour} [duration:{duration}]"
        balance, _, before = self.state()
        fields: dict[str, Any] = {"prompt": prompt, "model": model, "size": size,
                                  "seconds": str(seconds)}
        outcome = attempt(lambda: self.sdk.videos.create(**fields))
        if isinstance(outcome, openai.RateLimitError):
            assert (outcome.code, outcome.type) == ("insufficient_quota", "insufficient_quota")
            # Refunds only ever raise the balance, so it was short when it was read.
            assert balance < price, (balance, price)
            _, _, after = self.state()
            assert [e for e in after if e["kind"] == "hold"] == [
                e for e in before if e["kind"] == "hold"], "a refused create held money"
            return multiple()
        if behaviour == "[reject]":
            assert isinstance(outcome, openai.BadRequestError), outcome
            assert (outcome.status_code, outcome.code) == (400, "moderation_blocked")
            self.expect_released(before, price)
            return multiple()
        if behaviour == "[status:503]":
            assert isinstance(outcome, openai.InternalServerError), outcome
            assert (outcome.status_code, outcome.code) == (502, "upstream_error")
            self.expect_released(before, price)
            return multiple()
        assert isinstance(outcome, Video), outcome
        video = outcome
        assert video.status in ("queued", "in_progress"), video
        held = [e for e in self.ledger()
                if e["kind"] == "hold" and e["job_id"] == video.id]
        assert [usd(e["amount_usd"]) for e in held] == [price]
        self.model[video.id] = ModelJob(video.id, self.upstream_id(prompt), price, behaviour)
        return video.id

    def expect_released(self, before: list[dict[str, Any]], price: Decimal) -> None:
        """A refused create left exactly one hold and its release, both of the price."""
        _, _, after = self.state()
        seen = {e["id"] for e in before}
        new = [e for e in after if e["id"] not in seen and e["job_id"] not in self.model]
        assert [(e["kind"], usd(e["amount_usd"])) for e in new] == [
            ("hold", price), ("release", price)], new
        assert new[0]["job_id"] == new[1]["job_id"]
        assert new[0]["job_id"] not in self.model
        self.refused += 1

    @rule(video_id=jobs, outcome=st.sampled_from(["completed", "failed"]))
    def force_finish(self, video_id: str, outcome: str) -> None:
        """The upstream declares an end, even for a job that already ended or was deleted."""
        self.sim.finish(self.model[video_id].upstream_id, outcome)

    @rule(video_id=jobs)
    def retrieve(self, video_id: str) -> None:
        job = self.model[video_id]
        if job.deleted:
            with pytest.raises(openai.NotFoundError) as info:
                self.sdk.videos.retrieve(video_id)
            assert info.value.code == "not_found"
            return
        video = self.sdk.videos.retrieve(video_id)
        assert video.status in ("queued", "in_progress", "completed", "failed")
        if job.terminal is not None:
            assert video.status == job.terminal, "a finished video changed its status"
        elif video.status in ("completed", "failed"):
            job.terminal = video.status

    @rule(video_id=jobs)
    def delete(self, video_id: str) -> None:
        job = self.model[video_id]
        if job.deleted:
            with pytest.raises(openai.NotFoundError) as info:
                self.sdk.videos.delete(video_id)
            assert info.value.code == "not_found"
            return
        deleted = self.sdk.videos.delete(video_id)
        assert (deleted.id, deleted.deleted) == (video_id, True)
        job.deleted = True

    @rule(amount=st.sampled_from(["0.25", "1", "2.5"]))
    def top_up(self, amount: str) -> None:
        assert self.token_id is not None
        balance, _, before = self.state()
        token = self.admin("POST", f"/admin/tokens/{self.token_id}/topup",
                           json={"amount_usd": amount})
        self.topups += usd(amount)
        # Refunds may land meanwhile: the balance rises by the amount, or by more.
        assert usd(token["balance_usd"]) >= balance + usd(amount)
        _, _, after = self.state()
        seen = {e["id"] for e in before}
        assert [(e["kind"], usd(e["amount_usd"])) for e in after
                if e["id"] not in seen and e["kind"] == "topup"] == [("topup", usd(amount))]

    @precondition(lambda self: self.restarts < 1)
    @rule()
    def crash_and_restart(self) -> None:
        self.gw.kill()
        self.gw.start()
        self.restarts += 1

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def books_balance(self) -> None:
        if self.token_id is None:
            return
        balance, held, ledger = self.state()
        totals = sums(ledger)
        assert balance >= ZERO
        assert held >= ZERO
        assert totals["topup"] == self.topups
        assert totals["topup"] == balance + held + totals["capture"]
        settled = [e["job_id"] for e in ledger if e["kind"] in SETTLING]
        assert len(settled) == len(set(settled)), f"a job was settled twice: {settled}"
        holds = [e["job_id"] for e in ledger if e["kind"] == "hold"]
        assert len(holds) == len(set(holds)), f"a job was held twice: {holds}"
        assert set(settled) <= set(holds), "a settlement without a hold"
        assert sum(totals[kind] for kind in SETTLING) + held == totals["hold"]
        assert set(self.model) <= set(holds)
        row, ledger_then = self.reconcile_row()
        then = sums(ledger_then)
        assert row["ok"] is True, row
        assert (usd(row["topups_usd"]), usd(row["charged_usd"]), usd(row["refunded_usd"])) == (
            then["topup"], then["capture"], then["refund"] + then["release"]), row

    # -- the end of an example -----------------------------------------------------------------
    def teardown(self) -> None:
        try:
            if self.token_id is not None:
                self.settle_everything()
        finally:
            self.http.close()
            if self.client is not None:
                self.client.close()

    def settle_everything(self) -> None:
        for job in self.model.values():
            # Whatever is still running is told to finish, so every job reaches an end.
            self.sim.finish(job.upstream_id, "completed")

        def all_settled() -> bool:
            _, held, ledger = self.state()
            settled = {e["job_id"] for e in ledger if e["kind"] in SETTLING}
            return held == ZERO and set(self.model) <= settled

        wait_for(all_settled, timeout=30)
        _, _, ledger = self.state()
        for job in self.model.values():
            entries = [(e["kind"], usd(e["amount_usd"])) for e in ledger
                       if e["job_id"] == job.video_id]
            assert entries[0] == ("hold", job.price), entries
            assert len(entries) == 2, f"{job.video_id} was not settled exactly once: {entries}"
            kind = entries[1][0]
            video = self.admin("GET", f"/admin/videos/{job.video_id}")
            assert video["deleted"] is job.deleted
            expected = {"completed": "capture", "failed": "refund"}[video["status"]]
            assert (kind, video["settlement"]) == (expected, expected), (job, video)
            if job.terminal is not None:
                assert video["status"] == job.terminal, "a finished video changed its status"
        releases = sum(1 for e in ledger if e["kind"] == "release")
        assert releases == self.refused
        self.books_balance()


def ledger_gateway(make_gateway: Callable[..., Gateway], simulator: Simulator) -> Gateway:
    """One gateway for all examples of a test: a short lease so a restart recovers quickly."""
    return make_gateway(
        [upstream("primary", simulator, ["official", "budget"], timeout_s=3)],
        jobs={"poll_interval_s": 0.3, "refresh_after_s": 0.2, "max_age_s": 3600,
              "lease_s": 1, "poll_after_ms": 100},
    )


class TestLedgerStateMachine:
    def test_random_histories_keep_the_books_balanced_and_settle_each_job_once(
        self, make_gateway: Callable[..., Gateway], simulator: Simulator
    ) -> None:
        gw = ledger_gateway(make_gateway, simulator)
        machine = type("BoundLedgerBooks", (LedgerBooks,), {"gw": gw, "sim": simulator})
        run_state_machine_as_test(machine, settings=SETTINGS)
        with gw.admin() as admin:
            report = admin.get("/admin/reconcile").json()
        assert report["ok"] is True, report


class TestReconciliationReport:
    def test_report_never_shows_a_false_imbalance_while_jobs_settle(
        self, gateway: Gateway
    ) -> None:
        """Read while captures land, the operator's report must still balance every token."""
        token_id, token = gateway.create_token(group="budget", billing_mode="per_call",
                                               balance_usd="20")
        client = gateway.client(token)
        # 80 jobs ending one after another over about one second, after all were created.
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: client.videos.create(
                prompt=f"settling {uuid.uuid4().hex} [duration:{3 + n * 0.012:.3f}]"),
                range(80)))
        assert gateway.token(token_id)["held_usd"] == "12.000000"
        false_alarms: list[dict[str, Any]] = []
        reads = [0]

        def watch() -> None:
            with gateway.admin() as admin:
                while True:
                    report = admin.get("/admin/reconcile").json()
                    [row] = [r for r in report["tokens"] if r["token_id"] == token_id]
                    reads[0] += 1
                    if not row["ok"]:
                        false_alarms.append(row)
                    if row["held_usd"] == "0.000000" or reads[0] > 2000:
                        return

        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda _: watch(), range(3)))

        assert gateway.token(token_id)["held_usd"] == "0.000000"
        gateway.assert_reconciles(token_id)
        assert false_alarms == [], (
            f"{len(false_alarms)} of {reads[0]} reports showed a balanced token as unbalanced, "
            f"e.g. {false_alarms[0]}")
