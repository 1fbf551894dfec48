"""Webhooks end to end: gateway processes, the simulator upstream and receivers on loopback.

Every event is read the way a receiver running the openai SDK reads it (``webhooks.unwrap``,
which verifies the signature first).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import InvalidWebhookSignatureError

from gateway.db import create_engine, create_sessionmaker
from gateway.migrate import upgrade
from gateway.tokens.models import Token
from gateway.webhooks.events import new_event_id
from gateway.webhooks.models import WebhookDelivery
from gateway.webhooks.repository import Claimed, DeliveryRepository
from tests.conftest import wait_for
from tests.support.servers import Gateway, Simulator, base_config, database_url, upstream
from tests.support.webhooks import Receiver, Reply, unwrap

# Loopback receivers, and retries and a secret grace short enough to watch.
HOOKS: dict[str, Any] = {
    "allow_http": True, "allow_private": True, "poll_interval_s": 0.1, "backoff_base_s": 0.2,
    "backoff_cap_s": 0.4, "connect_timeout_s": 1.0, "timeout_s": 2.0, "lease_s": 3.0,
    "secret_grace_s": 3.0,
}
QUICK = "[duration:0.3]"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator) -> Iterator[Gateway]:
    config = base_config([upstream("primary", simulator, ["official"])], webhooks=HOOKS)
    gateway = Gateway(tmp_path_factory.mktemp("webhooks"), config).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def hooked_token(gw: Gateway, url: str) -> tuple[str, str, str]:
    """A token sending its events to ``url``: (id, plaintext, webhook secret)."""
    with gw.admin() as admin:
        response = admin.post("/admin/tokens", json={
            "name": "hooked", "group": "official", "balance_usd": "10", "webhook_url": url})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["token"], body["webhook_secret"]


def video(gw: Gateway, token: str, prompt: str, status: str = "completed") -> str:
    client = gw.client(token)
    job = client.videos.create(prompt=f"{prompt} {uuid.uuid4().hex[:6]}", model="sora-2",
                               seconds="4")
    if status:
        wait_for(lambda: client.videos.retrieve(job.id).status == status, 15)
    return job.id


def deliveries(gw: Gateway, **params: str) -> list[dict[str, Any]]:
    with gw.admin() as admin:
        response = admin.get("/admin/webhooks", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def delivery_of(gw: Gateway, token_id: str, status: str) -> dict[str, Any]:
    return wait_for(lambda: next(iter(deliveries(gw, token_id=token_id, status=status)), None))


def settle(receiver: Receiver, count: int, quiet_s: float = 1.0) -> list[Any]:
    """Exactly ``count`` requests: that many came, and no more within ``quiet_s``."""
    received = receiver.wait(count)
    time.sleep(quiet_s)
    assert len(receiver.received) == count, [r.headers["webhook-id"] for r in receiver.received]
    return received


class TestEvents:
    def test_a_completed_and_a_failed_job_each_send_one_event_of_their_type(
            self, gw: Gateway, receiver: Receiver) -> None:
        _, token, secret = hooked_token(gw, receiver.url + "/hooks")
        done = video(gw, token, f"done {QUICK}")
        failed = video(gw, token, f"broken [fail] {QUICK}", status="failed")

        events = {e.data.id: e for e in (unwrap(r, secret) for r in settle(receiver, 2))}
        assert {vid: e.type for vid, e in events.items()} == {
            done: "video.completed", failed: "video.failed"}
        for request in receiver.received:
            event = json.loads(request.body)
            assert request.method == "POST"
            assert request.path == "/hooks"
            assert request.headers["webhook-id"] == event["id"]
            assert event["id"].startswith("evt_")
            assert event["object"] == "event"
            assert abs(event["created_at"] - time.time()) < 30

    def test_deliveries_are_listed_newest_first_a_page_at_a_time(
            self, gw: Gateway, receiver: Receiver) -> None:
        token_id, token, _ = hooked_token(gw, receiver.url)
        older = video(gw, token, f"first {QUICK}")
        newer = video(gw, token, f"second {QUICK}")
        receiver.wait(2)
        with gw.admin() as admin:
            first = admin.get("/admin/webhooks", params={"token_id": token_id, "limit": 1}).json()
            second = admin.get("/admin/webhooks", params={
                "token_id": token_id, "limit": 1, "after": first["last_id"]}).json()
        assert ([d["video_id"] for d in first["data"]], first["has_more"]) == ([newer], True)
        assert ([d["video_id"] for d in second["data"]], second["has_more"]) == ([older], False)

    def test_a_token_without_a_webhook_queues_nothing(self, gw: Gateway) -> None:
        token_id, token = gw.create_token()
        video(gw, token, f"quiet {QUICK}")
        time.sleep(0.3)
        assert deliveries(gw, token_id=token_id) == []

    def test_a_job_its_client_deletes_before_it_ends_sends_nothing(
            self, gw: Gateway, receiver: Receiver) -> None:
        """OpenAI sends no event for a deletion; the refund it causes sends none either."""
        token_id, token, _ = hooked_token(gw, receiver.url)
        running = video(gw, token, "endless [never]", status="in_progress")
        gw.client(token).videos.delete(running)
        time.sleep(0.5)
        assert receiver.received == []
        assert deliveries(gw, token_id=token_id) == []


class TestRetries:
    def test_a_receiver_failing_twice_gets_the_same_event_three_times_then_nothing(
            self, gw: Gateway) -> None:
        with Receiver([Reply(500), Reply(503)]) as receiver:
            token_id, token, secret = hooked_token(gw, receiver.url)
            done = video(gw, token, f"retried {QUICK}")
            tries = settle(receiver, 3)
        assert len({r.headers["webhook-id"] for r in tries}) == 1
        assert {unwrap(r, secret).data.id for r in tries} == {done}
        row = delivery_of(gw, token_id, "delivered")
        assert (row["attempts"], row["last_status"], row["last_error"]) == (3, 200, None)

    def test_more_events_than_a_claim_takes_each_arrive_once(self, gw: Gateway) -> None:
        """Twenty events, more than the worker holds at once (twice webhooks.concurrency),
        the first five tries failing: every event arrives once with a 2xx, and its row,
        written with others in a batch, counts each of its tries."""
        with Receiver([Reply(500)] * 5) as receiver:
            token_id, token, secret = hooked_token(gw, receiver.url)
            jobs = [video(gw, token, f"many {n} {QUICK}", status="") for n in range(20)]
            received = settle(receiver, 25, quiet_s=1.5)
        answered = Counter(r.headers["webhook-id"] for r in received[5:])
        assert set(answered.values()) == {1}
        assert sorted(unwrap(r, secret).data.id for r in received[5:]) == sorted(jobs)
        def all_delivered() -> list[dict[str, Any]] | None:
            found = deliveries(gw, token_id=token_id, status="delivered", limit="100")
            return found if len(found) == 20 else None

        rows = wait_for(all_delivered)
        assert sum(row["attempts"] for row in rows) == 25

    def test_a_redirect_is_not_followed(self, gw: Gateway) -> None:
        with Receiver() as target, Receiver(default=Reply(
                307, {"Location": target.url + "/elsewhere"})) as receiver:
            token_id, token, _ = hooked_token(gw, receiver.url)
            video(gw, token, f"moved {QUICK}")
            row = delivery_of(gw, token_id, "failed")
            assert target.received == []
        assert len(receiver.received) == 1
        assert row["last_status"] == 307
        assert "redirect" in row["last_error"]


class TestSecrets:
    def test_the_secret_is_shown_once_and_kept_when_the_url_changes(
            self, gw: Gateway, receiver: Receiver) -> None:
        token_id, _, secret = hooked_token(gw, receiver.url)
        assert secret.startswith("whsec_")
        shown = gw.token(token_id)
        assert shown["webhook_url"] == receiver.url
        assert "webhook_secret" not in shown
        with gw.admin() as admin:
            listed = admin.get("/admin/tokens").json()["data"]
            moved = admin.patch(f"/admin/tokens/{token_id}",
                                json={"webhook_url": receiver.url + "/v2"}).json()
            removed = admin.patch(f"/admin/tokens/{token_id}", json={"webhook_url": None}).json()
            again = admin.patch(f"/admin/tokens/{token_id}",
                                json={"webhook_url": receiver.url}).json()
        assert not any("webhook_secret" in t for t in listed)
        assert (moved["webhook_url"], removed["webhook_url"]) == (receiver.url + "/v2", None)
        assert "webhook_secret" not in moved
        assert "webhook_secret" not in again
        assert secret not in json.dumps([shown, listed, moved, removed, again])

    def test_a_rotated_secret_verifies_and_the_old_one_only_within_its_grace(
            self, gw: Gateway, receiver: Receiver) -> None:
        token_id, token = gw.create_token()
        holder = httpx.Client(base_url=gw.url + "/v1", timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
        with holder:
            first = holder.patch("/me", json={"webhook_url": receiver.url}).json()
            assert first["webhook_url"] == receiver.url
            same = holder.patch("/me", json={"webhook_url": receiver.url}).json()
            assert "webhook_secret" not in same
            rotated = holder.post("/me/webhook_secret").json()
            assert "webhook_secret" not in holder.get("/me").json()
        old, new = first["webhook_secret"], rotated["webhook_secret"]
        assert old != new
        video(gw, token, f"in grace {QUICK}")
        (within,) = receiver.wait(1)
        assert unwrap(within, new).type == unwrap(within, old).type == "video.completed"

        time.sleep(HOOKS["secret_grace_s"])
        video(gw, token, f"after grace {QUICK}")
        after = receiver.wait(2)[1]
        assert unwrap(after, new).type == "video.completed"
        with pytest.raises(InvalidWebhookSignatureError):
            unwrap(after, old)

        with gw.admin() as admin:
            by_admin = admin.post(f"/admin/tokens/{token_id}/webhook_secret").json()
        assert by_admin["webhook_secret"] not in (old, new)
        assert "webhook_secret" not in gw.token(token_id)
        logs = gw.logs()
        assert all(secret not in logs for secret in (old, new, by_admin["webhook_secret"]))


class TestURLs:
    @pytest.mark.parametrize("url", [
        "ftp://example.com/hook", "not a url", "", "http://user:secret@127.0.0.1/hook",
        "http://" + "a" * 2100 + ".example/",
    ])
    def test_a_url_the_gateway_would_not_send_to_is_refused_when_set(
            self, gw: Gateway, url: str) -> None:
        token_id, token = gw.create_token()
        with gw.admin() as admin:
            created = admin.post("/admin/tokens", json={
                "name": "x", "group": "official", "webhook_url": url})
            updated = admin.patch(f"/admin/tokens/{token_id}", json={"webhook_url": url})
        by_holder = httpx.patch(f"{gw.url}/v1/me", json={"webhook_url": url},
                                headers={"Authorization": f"Bearer {token}"})
        for response in (created, updated, by_holder):
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert (error["code"], error["param"]) == ("invalid_value", "webhook_url")
        assert gw.token(token_id)["webhook_url"] is None

    def test_a_private_address_is_refused_when_set_and_again_when_sent(
            self, make_gateway: Callable[..., Gateway], simulator: Simulator) -> None:
        """Set while private addresses were allowed, then sent after they no longer are:
        the check at sending catches what the check at setting could not (a DNS answer that
        changed, here a changed policy)."""
        gw = make_gateway([upstream("primary", simulator, ["official"])], webhooks=HOOKS)
        with Receiver() as receiver:
            token_id, token, _ = hooked_token(gw, receiver.url)
            gw.stop()
            gw.config["webhooks"] = {**HOOKS, "allow_private": False}
            gw.start()
            for url in (receiver.url, "http://localhost:9/hook", "http://[::1]/hook"):
                with gw.admin() as admin:
                    refused = admin.patch(f"/admin/tokens/{token_id}", json={"webhook_url": url})
                assert refused.status_code == 400, refused.text
                assert "private" in refused.json()["error"]["message"]
            video(gw, token, f"to loopback {QUICK}")
            row = delivery_of(gw, token_id, "failed")
            assert receiver.received == []
        assert "private, loopback or link-local" in row["last_error"]
        assert row["attempts"] == 1


class TestCrash:
    def test_a_gateway_killed_mid_delivery_sends_the_event_after_restart(
            self, make_gateway: Callable[..., Gateway], simulator: Simulator) -> None:
        """The attempt in flight dies with the process; its lease runs out and the event
        goes again under the same id."""
        hooks = {**HOOKS, "timeout_s": 1.5, "lease_s": 2.0}
        gw = make_gateway([upstream("primary", simulator, ["official"])], webhooks=hooks)
        with Receiver([Reply(200, delay_s=4.0)]) as receiver:
            token_id, token, secret = hooked_token(gw, receiver.url)
            done = video(gw, token, f"crash {QUICK}", status="")
            receiver.wait(1)
            gw.kill()
            gw.start()
            first, second = receiver.wait(2)
            assert first.headers["webhook-id"] == second.headers["webhook-id"]
            assert unwrap(second, secret).data.id == done
            row = delivery_of(gw, token_id, "delivered")
        assert row["attempts"] == 1  # the killed attempt never got to write its result


class TestOperator:
    def test_deliveries_are_listed_and_a_replay_sends_the_same_event_again(
            self, gw: Gateway, receiver: Receiver) -> None:
        token_id, token, secret = hooked_token(gw, receiver.url)
        done = video(gw, token, f"replayed {QUICK}")
        row = delivery_of(gw, token_id, "delivered")
        assert (row["video_id"], row["type"], row["attempts"]) == (done, "video.completed", 1)
        assert row["event"] == json.loads(receiver.wait(1)[0].body)
        assert deliveries(gw, token_id=token_id, status="failed") == []

        with gw.admin() as admin:
            replayed = admin.post(f"/admin/webhooks/{row['id']}/replay")
            unknown = admin.post(f"/admin/webhooks/evt_{'0' * 32}/replay")
            bad_status = admin.get("/admin/webhooks", params={"status": "lost"})
        assert replayed.status_code == 200
        assert replayed.json()["status"] == "pending"
        assert unknown.status_code == 404
        assert bad_status.json()["error"]["param"] == "status"
        again = settle(receiver, 2)[1]
        assert again.headers["webhook-id"] == row["id"]
        assert unwrap(again, secret).data.id == done
        assert delivery_of(gw, token_id, "delivered")["attempts"] == 1
        metrics = gw.metrics()
        assert 'gateway_webhook_deliveries_total{outcome="delivered"}' in metrics
        assert "gateway_webhook_queue_depth 0.0" in metrics
        assert "gateway_webhook_oldest_undelivered_age_seconds 0.0" in metrics

    def test_the_cli_sets_a_webhook_lists_deliveries_and_replays_one(
            self, gw: Gateway, receiver: Receiver) -> None:
        token_id, token = gw.create_token()

        def cli(*args: str) -> str:
            env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
            done = subprocess.run(
                [sys.executable, "-m", "gateway.cli", *args, "--config", str(gw.config_path)],
                capture_output=True, text=True, env=env, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            return done.stdout

        printed = cli("tokens", "update", token_id, "--webhook-url", receiver.url)
        secret = printed.split("webhook secret: ")[1].split()[0]
        video(gw, token, f"cli {QUICK}")
        receiver.wait(1)
        row = delivery_of(gw, token_id, "delivered")
        listed = json.loads(cli("webhooks", "list", "--token-id", token_id, "--format", "json"))
        assert [(d["id"], d["status"]) for d in listed] == [(row["id"], "delivered")]
        assert row["id"] in cli("webhooks", "replay", row["id"])
        assert unwrap(receiver.wait(2)[1], secret).id == row["id"]


async def race_for_claims(url: str, events: int) -> tuple[list[Claimed], list[Claimed]]:
    """Two claims of the same due events, the second made while the first is uncommitted:
    it reads the rows unleased, then must win none of them."""
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    at = time.time()
    try:
        async with sessions() as session, session.begin():
            session.add(Token(id="tok_" + "0" * 24, name="race", group="official",
                              billing_mode="per_second", key_hash="0" * 64, key_hint="sk-…",
                              balance_micros=0, held_micros=0, active_jobs=0, models=[],
                              disabled=False, created_at=at, webhook_url="https://x.example"))
            await session.flush()
            session.add_all(WebhookDelivery(
                id=new_event_id(), token_id="tok_" + "0" * 24, job_id=f"video_{n}",
                type="video.completed", body=b"{}", status="pending", attempts=0,
                created_at=at, next_attempt_at=at) for n in range(events))
        async with sessions() as first:
            await first.begin()
            won_first = await DeliveryRepository(first).claim("first", at, at + 60, events)

            async def second_claim() -> list[Claimed]:
                async with sessions() as second, second.begin():
                    return await DeliveryRepository(second).claim("second", at, at + 60, events)

            second = asyncio.create_task(second_claim())
            await asyncio.sleep(0.5)  # it has read the rows and waits on the first's locks
            await first.commit()
            return won_first, await second
    finally:
        await engine.dispose()


@pytest.mark.skipif(not os.environ.get("GATEWAY_TEST_POSTGRES_URL"),
                    reason="needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")
class TestReplicas:
    def test_an_event_claimed_by_one_process_is_not_claimed_by_another(
            self, tmp_path: Path) -> None:
        url = database_url(tmp_path)
        upgrade(url)
        won_first, won_second = asyncio.run(race_for_claims(url, events=3))
        assert (len(won_first), won_second) == (3, [])

    def test_two_processes_deliver_each_event_once_between_them(
            self, make_gateway: Callable[..., Gateway], simulator: Simulator,
            tmp_path_factory: pytest.TempPathFactory) -> None:
        first = make_gateway([upstream("primary", simulator, ["official"])], webhooks=HOOKS)
        second = Gateway(tmp_path_factory.mktemp("replica"), dict(first.config)).start()
        try:
            # A slow receiver keeps attempts in flight while the other process claims.
            with Receiver(default=Reply(200, delay_s=0.2)) as receiver:
                _, token, secret = hooked_token(first, receiver.url)
                jobs = [video(process, token, f"replica {n} {QUICK}", status="")
                        for n, process in enumerate([first, second] * 5)]
                received = settle(receiver, len(jobs), quiet_s=1.5)
        finally:
            second.stop()
        ids = Counter(r.headers["webhook-id"] for r in received)
        assert set(ids.values()) == {1}
        assert sorted(unwrap(r, secret).data.id for r in received) == sorted(jobs)
