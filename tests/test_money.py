"""SPEC §3 lifecycle of money: hold at create, capture, refund, release, top-up, exactly once.

Every test issues its own token and checks balance, held money and the ledger after each step,
then proves the token's books reconcile.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types import Video

from tests.conftest import wait_for
from tests.support.servers import Gateway, Simulator, base_config, free_port, upstream

ZERO = "0.000000"
FAST = "[duration:0.3]"


# -- helpers -----------------------------------------------------------------------------------
def tag() -> str:
    return uuid.uuid4().hex[:12]


def money(gw: Gateway, token_id: str) -> tuple[str, str]:
    """(balance_usd, held_usd) as the admin API reports them."""
    state = gw.token(token_id)
    return state["balance_usd"], state["held_usd"]


def kinds(gw: Gateway, token_id: str) -> list[str]:
    return [entry["kind"] for entry in gw.ledger(token_id)]


def job_entries(gw: Gateway, token_id: str, job_id: str) -> list[tuple[str, str]]:
    """(kind, amount) of every ledger entry of one job, in order."""
    return [(e["kind"], e["amount_usd"]) for e in gw.ledger(token_id) if e["job_id"] == job_id]


def nothing_held(gw: Gateway, token_id: str) -> bool:
    return gw.token(token_id)["held_usd"] == ZERO


def upstream_ids(sim: Simulator, prompt: str) -> list[str]:
    return [job_id for job_id, job in sim.stats()["jobs"].items() if job["prompt"] == prompt]


def upstream_id(sim: Simulator, prompt: str) -> str:
    found = upstream_ids(sim, prompt)
    assert len(found) == 1, found
    return found[0]


def assert_error(exc: openai.APIStatusError, status: int, kind: str, code: str | None,
                 param: str | None = None) -> None:
    assert exc.status_code == status, exc.response.text
    assert (exc.type, exc.code) == (kind, code), exc.response.text
    if param is not None:
        assert exc.param == param, exc.response.text


def jobs_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"poll_interval_s": 0.5, "refresh_after_s": 0.2,
                              "max_age_s": 3600, "lease_s": 1, "poll_after_ms": 100}
    config.update(overrides)
    return config


def idem(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory,
                simulator: Simulator) -> Iterator[Gateway]:
    """Jobs expire after 2 s; group `budget` is served only by an upstream nobody listens on."""
    dead = upstream("dead", simulator, ["budget"],
                    base_url=f"http://127.0.0.1:{free_port()}/v1")
    config = base_config([upstream("primary", simulator, ["official"]), dead],
                         jobs=jobs_config(max_age_s=2))
    gw = Gateway(tmp_path_factory.mktemp("short_lived"), config).start()
    yield gw
    gw.stop()


# -- 1. hold at create -------------------------------------------------------------------------
class TestHoldAtCreate:
    @pytest.mark.parametrize(
        ("group", "billing_mode", "model", "size", "seconds", "price"),
        [
            ("official", "per_second", "sora-2", "720x1280", "4", "0.400000"),
            ("official", "per_second", "sora-2-pro", "1792x1024", "12", "6.000000"),
            ("budget", "per_call", "sora-2", "720x1280", "4", "0.150000"),
            ("budget", "per_call", "sora-2", "720x1280", "12", "0.150000"),
            ("resale", "per_second", "sora-2", "720x1280", "4", "0.600000"),
        ],
        ids=["per-second-sora-2-4s", "per-second-sora-2-pro-12s", "per-call-4s",
             "per-call-12s", "resale-multiplier-1.5"],
    )
    def test_create_moves_exact_price_from_balance_to_held(
        self, gateway: Gateway, group: str, billing_mode: str, model: str, size: str,
        seconds: str, price: str,
    ) -> None:
        token_id, token = gateway.create_token(group=group, billing_mode=billing_mode,
                                               balance_usd="10")
        client = gateway.client(token)
        shape: dict[str, Any] = {"model": model, "size": size, "seconds": seconds}

        video = client.videos.create(prompt=f"hold {tag()} [never]", **shape)

        assert (video.model, video.size, video.seconds) == (model, size, seconds)
        assert video.status in ("queued", "in_progress")
        expected_balance = f"{Decimal(10) - Decimal(price):.6f}"
        assert money(gateway, token_id) == (expected_balance, price)
        assert kinds(gateway, token_id) == ["topup", "hold"]
        assert job_entries(gateway, token_id, video.id) == [("hold", price)]

        client.videos.delete(video.id)

        assert money(gateway, token_id) == ("10.000000", ZERO)
        assert job_entries(gateway, token_id, video.id) == [("hold", price), ("refund", price)]
        gateway.assert_reconciles(token_id)


# -- 2. capture and refund as jobs end ---------------------------------------------------------
class TestSettlementWhenJobsEnd:
    def test_completed_job_captures_its_hold(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)

        video = client.videos.create_and_poll(prompt=f"capture {tag()} {FAST}",
                                              poll_interval_ms=100)

        assert video.status == "completed"
        assert money(gateway, token_id) == ("1.600000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "capture"]
        assert job_entries(gateway, token_id, video.id) == [("hold", "0.400000"),
                                                            ("capture", "0.400000")]
        gateway.assert_reconciles(token_id)

    def test_failed_job_refunds_its_hold(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)

        video = client.videos.create_and_poll(prompt=f"refund {tag()} [fail] {FAST}",
                                              poll_interval_ms=100)

        assert video.status == "failed"
        assert video.error is not None
        assert money(gateway, token_id) == ("2.000000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "refund"]
        assert job_entries(gateway, token_id, video.id) == [("hold", "0.400000"),
                                                            ("refund", "0.400000")]
        gateway.assert_reconciles(token_id)

    def test_failed_job_is_refunded_without_any_client_polling(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)

        video = client.videos.create(prompt=f"unwatched fail {tag()} [fail] {FAST}")
        assert money(gateway, token_id) == ("1.600000", "0.400000")

        # Only the admin API is consulted: the background reconciler must settle it.
        wait_for(lambda: nothing_held(gateway, token_id), timeout=10)

        assert money(gateway, token_id) == ("2.000000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "refund"]
        assert client.videos.retrieve(video.id).status == "failed"
        gateway.assert_reconciles(token_id)

    def test_completed_job_is_captured_without_any_client_polling(
        self, gateway: Gateway
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)

        video = client.videos.create(prompt=f"unwatched ok {tag()} {FAST}")
        assert money(gateway, token_id) == ("1.600000", "0.400000")

        wait_for(lambda: nothing_held(gateway, token_id), timeout=10)

        assert money(gateway, token_id) == ("1.600000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "capture"]
        assert client.videos.retrieve(video.id).status == "completed"
        gateway.assert_reconciles(token_id)


# -- 3. delete ---------------------------------------------------------------------------------
class TestDelete:
    def test_delete_before_completion_refunds_and_hides_the_video(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)
        prompt = f"delete early {tag()} [never]"
        video = client.videos.create(prompt=prompt)
        assert money(gateway, token_id) == ("1.600000", "0.400000")

        deleted = client.videos.delete(video.id)

        assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
        assert money(gateway, token_id) == ("2.000000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "refund"]
        with pytest.raises(openai.NotFoundError) as retrieved:
            client.videos.retrieve(video.id)
        assert_error(retrieved.value, 404, "invalid_request_error", "not_found")
        with pytest.raises(openai.NotFoundError) as content:
            client.videos.download_content(video.id)
        assert_error(content.value, 404, "invalid_request_error", "not_found")
        assert video.id not in [v.id for v in client.videos.list().data]
        assert upstream_id(simulator, prompt) in simulator.stats()["deletes"]
        gateway.assert_reconciles(token_id)

    def test_delete_after_completion_keeps_the_charge(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)
        video = client.videos.create_and_poll(prompt=f"delete late {tag()} {FAST}",
                                              poll_interval_ms=100)
        assert video.status == "completed"
        assert money(gateway, token_id) == ("1.600000", ZERO)

        assert client.videos.delete(video.id).deleted is True

        assert money(gateway, token_id) == ("1.600000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "capture"]
        with pytest.raises(openai.NotFoundError) as retrieved:
            client.videos.retrieve(video.id)
        assert_error(retrieved.value, 404, "invalid_request_error", "not_found")
        with pytest.raises(openai.NotFoundError) as content:
            client.videos.download_content(video.id)
        assert_error(content.value, 404, "invalid_request_error", "not_found")
        gateway.assert_reconciles(token_id)


# -- 4. upstream refuses or fails at create ----------------------------------------------------
class TestCreateRefusedUpstream:
    def test_upstream_rejection_releases_the_hold_at_once(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)

        with pytest.raises(openai.BadRequestError) as caught:
            client.videos.create(prompt=f"blocked {tag()} [reject]")

        assert caught.value.status_code == 400
        assert caught.value.type == "invalid_request_error"
        assert "moderation" in caught.value.message
        assert money(gateway, token_id) == ("2.000000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "release"]
        assert client.videos.list().data == []
        gateway.assert_reconciles(token_id)

    def test_upstream_5xx_releases_the_hold_and_answers_502(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)

        with pytest.raises(openai.InternalServerError) as caught:
            client.videos.create(prompt=f"down {tag()} [status:503]")

        assert_error(caught.value, 502, "server_error", "upstream_error")
        assert money(gateway, token_id) == ("2.000000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "release"]
        assert client.videos.list().data == []
        gateway.assert_reconciles(token_id)

    def test_unreachable_upstream_releases_the_hold(self, short_lived: Gateway) -> None:
        token_id, token = short_lived.create_token(group="budget", balance_usd="2")
        client = short_lived.client(token)

        with pytest.raises(openai.InternalServerError) as caught:
            client.videos.create(prompt=f"unreachable {tag()}")

        assert_error(caught.value, 502, "server_error", "upstream_error")
        assert money(short_lived, token_id) == ("2.000000", ZERO)
        assert kinds(short_lived, token_id) == ["topup", "hold", "release"]
        assert client.videos.list().data == []
        short_lived.assert_reconciles(token_id)


# -- 5. exactly once under concurrency ---------------------------------------------------------
class TestExactlyOnceUnderConcurrency:
    def test_concurrent_creates_never_spend_the_same_money(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2.000000")  # exactly 5 x 0.40
        client = gateway.client(token)
        run = tag()
        barrier = threading.Barrier(25)
        balances: list[Decimal] = []
        done = threading.Event()

        def create(index: int) -> Video | openai.APIStatusError:
            barrier.wait()
            try:
                return client.videos.create(prompt=f"race {run} #{index} [never]")
            except openai.APIStatusError as exc:
                return exc

        def watch() -> None:
            while not done.is_set():
                balances.append(Decimal(gateway.token(token_id)["balance_usd"]))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(max_workers=25) as executor:
                results = list(executor.map(create, range(25)))
        finally:
            done.set()
            watcher.join()

        videos = [r for r in results if isinstance(r, Video)]
        errors = [r for r in results if not isinstance(r, Video)]
        assert len(videos) == 5, [str(e) for e in errors]
        assert len(errors) == 20
        for error in errors:
            assert_error(error, 429, "insufficient_quota", "insufficient_quota")
            assert error.response.headers.get("x-should-retry") == "false"
        assert balances
        assert min(balances) >= 0
        assert money(gateway, token_id) == (ZERO, "2.000000")
        assert kinds(gateway, token_id) == ["topup"] + ["hold"] * 5
        assert len([j for j in simulator.stats()["jobs"].values() if run in j["prompt"]]) == 5

        for video in videos:
            simulator.finish(upstream_id(simulator, video.prompt or ""), "completed")
        wait_for(lambda: nothing_held(gateway, token_id), timeout=10)

        assert money(gateway, token_id) == (ZERO, ZERO)
        ledger = gateway.ledger(token_id)
        captured = sorted(e["job_id"] for e in ledger if e["kind"] == "capture")
        assert captured == sorted(v.id for v in videos)
        assert sorted(e["kind"] for e in ledger) == ["capture"] * 5 + ["hold"] * 5 + ["topup"]
        gateway.assert_reconciles(token_id)

    def test_many_concurrent_pollers_capture_once(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)
        prompt = f"thundering herd {tag()} [duration:1]"
        video = client.videos.create(prompt=prompt)
        barrier = threading.Barrier(30)

        def poll(_: int) -> list[str]:
            barrier.wait()
            seen: list[str] = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status = client.videos.retrieve(video.id).status
                seen.append(status)
                if status in ("completed", "failed"):
                    break
                time.sleep(0.02)
            return seen

        with ThreadPoolExecutor(max_workers=30) as executor:
            histories = list(executor.map(poll, range(30)))

        assert all(history[-1] == "completed" for history in histories)
        assert money(gateway, token_id) == ("1.600000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "capture"]
        upstream_job = upstream_id(simulator, prompt)
        assert simulator.stats()["max_concurrent_retrieves"][upstream_job] == 1
        gateway.assert_reconciles(token_id)


# -- 6. jobs.max_age_s -------------------------------------------------------------------------
class TestMaxAge:
    def test_job_past_max_age_is_failed_expired_and_refunded(self, short_lived: Gateway) -> None:
        gw = short_lived
        token_id, token = gw.create_token(balance_usd="2")
        client = gw.client(token)

        video = client.videos.create(prompt=f"forever {tag()} [never]")
        assert money(gw, token_id) == ("1.600000", "0.400000")

        wait_for(lambda: nothing_held(gw, token_id), timeout=10)

        assert money(gw, token_id) == ("2.000000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "refund"]
        expired = client.videos.retrieve(video.id)
        assert expired.status == "failed"
        assert expired.error is not None
        assert expired.error.code == "expired"
        gw.assert_reconciles(token_id)


# -- 7. Idempotency-Key ------------------------------------------------------------------------
class TestIdempotencyKey:
    def test_repeated_key_returns_the_first_job_and_holds_once(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)
        prompt, key = f"idem {tag()} [duration:1]", tag()

        first = client.videos.create(prompt=prompt, extra_headers=idem(key))
        second = client.videos.create(prompt=prompt, extra_headers=idem(key))

        assert second.id == first.id
        assert money(gateway, token_id) == ("1.600000", "0.400000")
        assert kinds(gateway, token_id) == ["topup", "hold"]
        assert len(upstream_ids(simulator, prompt)) == 1

        wait_for(lambda: nothing_held(gateway, token_id), timeout=10)
        third = client.videos.create(prompt=prompt, extra_headers=idem(key))

        assert (third.id, third.status) == (first.id, "completed")
        assert money(gateway, token_id) == ("1.600000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "capture"]
        gateway.assert_reconciles(token_id)

    def test_concurrent_repeats_of_one_key_make_one_job(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        # The repeats that find the first still being submitted get 409 idempotency_key_in_use
        # with Retry-After; the SDK's own retries then get the first job.
        client = gateway.client(token, max_retries=5)
        prompt, key = f"idem race {tag()} [never] [hang:0.5]", tag()
        barrier = threading.Barrier(10)

        def create(_: int) -> str:
            barrier.wait()
            return client.videos.create(prompt=prompt, extra_headers=idem(key)).id

        with ThreadPoolExecutor(max_workers=10) as executor:
            ids = list(executor.map(create, range(10)))

        assert len(set(ids)) == 1
        assert len(upstream_ids(simulator, prompt)) == 1
        assert money(gateway, token_id) == ("1.600000", "0.400000")
        assert kinds(gateway, token_id) == ["topup", "hold"]

        client.videos.delete(ids[0])
        assert money(gateway, token_id) == ("2.000000", ZERO)
        gateway.assert_reconciles(token_id)

    def test_different_key_makes_a_new_job(self, gateway: Gateway, simulator: Simulator) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)
        prompt = f"idem two keys {tag()} [never]"

        first = client.videos.create(prompt=prompt, extra_headers=idem(tag()))
        second = client.videos.create(prompt=prompt, extra_headers=idem(tag()))

        assert first.id != second.id
        assert len(upstream_ids(simulator, prompt)) == 2
        assert money(gateway, token_id) == ("1.200000", "0.800000")
        assert kinds(gateway, token_id) == ["topup", "hold", "hold"]

        for video in (first, second):
            client.videos.delete(video.id)
        assert money(gateway, token_id) == ("2.000000", ZERO)
        gateway.assert_reconciles(token_id)

    def test_same_key_on_another_token_is_independent(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        prompt, key = f"idem two tokens {tag()} [never]", tag()
        made: list[tuple[str, OpenAI, Video]] = []
        for _ in range(2):
            token_id, token = gateway.create_token(balance_usd="2")
            client = gateway.client(token)
            made.append((token_id, client,
                         client.videos.create(prompt=prompt, extra_headers=idem(key))))

        assert made[0][2].id != made[1][2].id
        assert len(upstream_ids(simulator, prompt)) == 2
        for token_id, client, video in made:
            assert money(gateway, token_id) == ("1.600000", "0.400000")
            assert job_entries(gateway, token_id, video.id) == [("hold", "0.400000")]
            client.videos.delete(video.id)
            assert kinds(gateway, token_id) == ["topup", "hold", "refund"]
            gateway.assert_reconciles(token_id)


# -- 8. remix ----------------------------------------------------------------------------------
class TestRemixBilling:
    def test_remix_holds_the_source_price_on_the_source_upstream(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="10")
        client = gateway.client(token)
        source_prompt = f"remix source {tag()} {FAST}"
        source = client.videos.create_and_poll(prompt=source_prompt, model="sora-2-pro",
                                               size="1280x720", seconds="8",
                                               poll_interval_ms=100)
        assert source.status == "completed"
        assert money(gateway, token_id) == ("7.600000", ZERO)
        remixes_before = len(simulator.stats()["remixes"])

        remix_prompt = f"remix child {tag()} [never]"
        remix = client.videos.remix(source.id, prompt=remix_prompt)

        assert remix.id != source.id
        assert remix.remixed_from_video_id == source.id
        assert (remix.model, remix.size, remix.seconds) == ("sora-2-pro", "1280x720", "8")
        assert money(gateway, token_id) == ("5.200000", "2.400000")
        assert kinds(gateway, token_id) == ["topup", "hold", "capture", "hold"]
        assert job_entries(gateway, token_id, remix.id) == [("hold", "2.400000")]
        remixes = simulator.stats()["remixes"]
        assert len(remixes) == remixes_before + 1
        child = upstream_id(simulator, remix_prompt)
        assert {"new_id": child, "source_id": upstream_id(simulator, source_prompt)} in remixes

        simulator.finish(child, "completed")
        wait_for(lambda: nothing_held(gateway, token_id), timeout=10)

        assert money(gateway, token_id) == ("5.200000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "capture", "hold", "capture"]
        gateway.assert_reconciles(token_id)

    def test_remix_of_an_unfinished_video_is_refused_without_a_hold(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)
        source = client.videos.create(prompt=f"unfinished source {tag()} [never]")
        remixes_before = len(simulator.stats()["remixes"])

        with pytest.raises(openai.BadRequestError) as caught:
            client.videos.remix(source.id, prompt=f"too soon {tag()}")

        assert_error(caught.value, 400, "invalid_request_error", "invalid_value",
                     param="video_id")
        assert money(gateway, token_id) == ("1.600000", "0.400000")
        assert kinds(gateway, token_id) == ["topup", "hold"]
        assert len(simulator.stats()["remixes"]) == remixes_before

        client.videos.delete(source.id)
        assert money(gateway, token_id) == ("2.000000", ZERO)
        gateway.assert_reconciles(token_id)


# -- 9. top-up ---------------------------------------------------------------------------------
class TestTopUp:
    def test_topup_raises_the_balance_and_records_a_ledger_entry(self, gateway: Gateway) -> None:
        token_id, _ = gateway.create_token(balance_usd="2")

        with gateway.admin() as admin:
            response = admin.post(f"/admin/tokens/{token_id}/topup",
                                  json={"amount_usd": "1.25", "note": "invoice 1042"})

        assert response.status_code == 200, response.text
        assert response.json()["balance_usd"] == "3.250000"
        assert money(gateway, token_id) == ("3.250000", ZERO)
        ledger = gateway.ledger(token_id)
        assert [e["kind"] for e in ledger] == ["topup", "topup"]
        assert (ledger[-1]["amount_usd"], ledger[-1]["note"]) == ("1.250000", "invoice 1042")
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize("amount", ["0", "-1", "abc", "0.0000001", -5],
                             ids=["zero", "negative", "not-a-number", "seven-decimals",
                                  "negative-json-number"])
    def test_topup_refuses_bad_amounts(self, gateway: Gateway, amount: object) -> None:
        token_id, _ = gateway.create_token(balance_usd="2")

        with gateway.admin() as admin:
            response = admin.post(f"/admin/tokens/{token_id}/topup",
                                  json={"amount_usd": amount, "note": "bad"})

        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (error["type"], error["code"], error["param"]) == (
            "invalid_request_error", "invalid_value", "amount_usd")
        assert money(gateway, token_id) == ("2.000000", ZERO)
        assert kinds(gateway, token_id) == ["topup"]
        gateway.assert_reconciles(token_id)


# -- 10. crash and restart ---------------------------------------------------------------------
@dataclass
class Crash:
    """What was in flight when a gateway got SIGKILL, and the restarted gateway."""

    gw: Gateway
    jobs_token: str
    jobs_client: OpenAI
    done: Video
    failed: Video
    slow: Video
    lost_token: str
    lost_client: OpenAI
    lost_outcome: list[BaseException | Video]


@pytest.fixture(scope="class")
def crash(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator) -> Iterator[Crash]:
    """Kill -9 a gateway with three jobs running and one create waiting on its upstream.

    Short upstream timeout and lease, so the create lost in the crash is given up on after
    timeout + lease = 4 s.
    """
    config = base_config([upstream("primary", simulator, ["official"], timeout_s=3)],
                         jobs=jobs_config())
    gw = Gateway(tmp_path_factory.mktemp("crash"), config).start()
    jobs_token, jobs_plain = gw.create_token(balance_usd="5")
    lost_token, lost_plain = gw.create_token(balance_usd="2")
    jobs_client, lost_client = gw.client(jobs_plain), gw.client(lost_plain)
    run = tag()
    done = jobs_client.videos.create(prompt=f"crash ok {run} [duration:0.5]")
    failed = jobs_client.videos.create(prompt=f"crash fail {run} [fail] [duration:0.5]")
    slow = jobs_client.videos.create(prompt=f"crash slow {run} [duration:3]")
    lost_outcome: list[BaseException | Video] = []

    def create_while_upstream_hangs() -> None:
        try:
            lost_outcome.append(lost_client.videos.create(prompt=f"lost {run} [hang:8]"))
        except openai.APIError as exc:
            lost_outcome.append(exc)

    creator = threading.Thread(target=create_while_upstream_hangs)
    creator.start()
    wait_for(lambda: money(gw, lost_token) == ("1.600000", "0.400000"), timeout=5)
    gw.kill()
    creator.join(timeout=10)
    time.sleep(0.5)
    gw.start()
    yield Crash(gw, jobs_token, jobs_client, done, failed, slow, lost_token, lost_client,
                lost_outcome)
    jobs_client.close()
    lost_client.close()
    gw.stop()


class TestKillAndRestart:
    def test_jobs_alive_at_a_crash_settle_once_after_restart(self, crash: Crash) -> None:
        gw, token_id = crash.gw, crash.jobs_token

        # No client polls: the restarted process must find and settle all three.
        wait_for(lambda: nothing_held(gw, token_id), timeout=20)

        assert money(gw, token_id) == ("4.200000", ZERO)
        assert job_entries(gw, token_id, crash.done.id) == [("hold", "0.400000"),
                                                            ("capture", "0.400000")]
        assert job_entries(gw, token_id, crash.failed.id) == [("hold", "0.400000"),
                                                              ("refund", "0.400000")]
        assert job_entries(gw, token_id, crash.slow.id) == [("hold", "0.400000"),
                                                            ("capture", "0.400000")]
        statuses = {v.id: v.status for v in crash.jobs_client.videos.list().data}
        assert statuses == {crash.done.id: "completed", crash.failed.id: "failed",
                            crash.slow.id: "completed"}
        gw.assert_reconciles(token_id)

    def test_hold_of_a_create_in_flight_at_a_crash_is_refunded(self, crash: Crash) -> None:
        gw, token_id = crash.gw, crash.lost_token
        assert len(crash.lost_outcome) == 1
        assert isinstance(crash.lost_outcome[0], openai.APIConnectionError)

        wait_for(lambda: nothing_held(gw, token_id), timeout=20)

        assert money(gw, token_id) == ("2.000000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "refund"]
        assert all(v.status == "failed" for v in crash.lost_client.videos.list().data)
        gw.assert_reconciles(token_id)
