"""Fault injection through the real SDK: what the client, the money and the operator see.

Each case breaks an upstream on purpose (error statuses, refused connections, a hang past the
timeout, broken JSON, failing polls, a job that never ends, a transfer cut halfway, a circuit
that opens) or plays a hostile client, and checks three things:

- the client gets OpenAI's error envelope with the right status and retry advice, and never a
  traceback, an upstream body, key, name or URL;
- money: nothing is charged for a job that never started (ledger ``release``), a job that
  started and ended badly is refunded, and a failing poll never ends or refunds a job (only the
  upstream's ``failed`` or ``jobs.max_age_s`` does);
- the operator finds a JSON log line and a Prometheus metric that tell what happened.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from openai import OpenAI
from openai.types import Video
from starlette.types import Receive, Scope, Send

from gateway.simulator import create_simulator_app, expected_content
from tests.conftest import wait_for
from tests.support.observe import logged, metric, samples, wait_logged
from tests.support.servers import (
    ADMIN_TOKEN,
    SIM_KEY,
    Gateway,
    QuietHandler,
    Simulator,
    ThreadedServer,
    base_config,
    free_port,
    upstream,
)

SECRET = "sk-upstream-secret"
ZERO = "0.000000"
UNFINISHED = ("queued", "in_progress")
ENVELOPE_FIELDS = {"message", "type", "param", "code"}
# Long enough for a few polls to fail first on a loaded machine (3 s was not).
MAX_AGE_S = 6.0
BREAKER_COOLDOWN_S = 2.0
NEVER_TRIPS = 1000  # breaker_failures for upstreams whose circuit is not under test


# -- small helpers -------------------------------------------------------------------------------
def tag(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:12]}"


def money(gw: Gateway, token_id: str) -> tuple[str, str]:
    state = gw.token(token_id)
    return state["balance_usd"], state["held_usd"]


def kinds(gw: Gateway, token_id: str) -> list[str]:
    return [entry["kind"] for entry in gw.ledger(token_id)]


def job_kinds(gw: Gateway, token_id: str, video_id: str) -> list[str]:
    return [entry["kind"] for entry in gw.ledger(token_id) if entry["job_id"] == video_id]


def reconcile_ok(gw: Gateway) -> None:
    """The operator's reconciliation report agrees the books balance and nothing is stale."""
    with gw.admin() as admin:
        response = admin.get("/admin/reconcile")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is True, report
    assert report["stale_holds"] == [], report


SdkFactory = Callable[..., OpenAI]


@pytest.fixture
def sdk() -> Iterator[SdkFactory]:
    """The SDK as users run it; ``sent`` records every HTTP request it makes, retries included."""
    opened: list[OpenAI] = []

    def make(gw: Gateway, token: str, *, max_retries: int = 0,
             sent: list[str] | None = None) -> OpenAI:
        hooks: dict[str, list[Callable[[Any], None]]] = {}
        if sent is not None:
            hooks["request"] = [
                lambda request: sent.append(f"{request.method} {request.url.path}")]
        http = openai.DefaultHttpxClient(event_hooks=hooks)
        client = gw.client(token, max_retries=max_retries, http_client=http)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def settled(client: OpenAI, video_id: str, timeout: float = 15) -> Video:
    def check() -> Video | None:
        video = client.videos.retrieve(video_id)
        assert video.status in ("queued", "in_progress", "completed", "failed"), video
        return video if video.status in ("completed", "failed") else None

    return wait_for(check, timeout=timeout, interval=0.05)  # type: ignore[no-any-return]


def stats_jobs(stats: dict[str, Any], prompt: str) -> list[str]:
    return [uid for uid, job in stats["jobs"].items() if job["prompt"] == prompt]


def one_upstream_job(stats: Callable[[], dict[str, Any]], prompt: str) -> str:
    found = stats_jobs(stats(), prompt)
    assert len(found) == 1, f"{prompt!r} reached this upstream {len(found)} times"
    return found[0]


@contextmanager
def no_server_errors(gw: Gateway) -> Iterator[None]:
    """Nothing inside the block was answered with a 5xx or logged as an unhandled error."""
    def fives() -> float:
        return sum(value for labels, value in samples(gw, "gateway_requests_total")
                   if labels["status"].startswith("5"))

    def unhandled() -> int:
        return gw.logs().count('"msg": "unhandled error"')

    before, crashes = fives(), unhandled()
    yield
    assert fives() == before, "a hostile request was answered with a 5xx"
    assert unhandled() == crashes, "a hostile request crashed a handler"


@dataclass(frozen=True)
class Exposure:
    """What a client may never see: upstream secrets, names, URLs, ids, tracebacks."""

    forbidden: tuple[str, ...]

    def no_leak(self, response: httpx.Response, *, body: bool = True) -> None:
        """Checks the headers, and a text body unless it is a stream still being read (a
        video's random bytes spell a short id prefix now and then)."""
        exposed = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        textual = response.headers.get("content-type", "").startswith(("application/", "text/"))
        if body and textual:
            exposed += "\n" + response.text
        for secret in (*self.forbidden, "Traceback", 'File "'):
            assert secret.lower() not in exposed.lower(), f"{secret!r} leaked: {exposed}"

    def error(self, response: httpx.Response, status: int, type_: str, code: str | None,
              param: str | None = None, *, should_retry: str | None = "false") -> dict[str, Any]:
        """The OpenAI error envelope with exactly these fields, and the agreed headers."""
        assert response.status_code == status, response.text
        assert response.headers.get("content-type", "").startswith("application/json")
        body = response.json()
        assert set(body) == {"error"}, body
        error: dict[str, Any] = body["error"]
        assert set(error) == ENVELOPE_FIELDS, error
        assert (error["type"], error["code"], error["param"]) == (type_, code, param), error
        assert isinstance(error["message"], str)
        assert error["message"].strip()
        assert response.headers.get("x-request-id", "").startswith("req_"), response.headers
        if should_retry is not None:
            assert response.headers.get("x-should-retry") == should_retry, response.headers
        self.no_leak(response)
        return error


# -- upstreams of this module's own ----------------------------------------------------------------
class KeyedUpstream:
    """The simulator app served in this process, accepting only ``keys``.

    An ASGI wrapper records the API key of every request, so each call of a job can be matched
    to the key that created it.
    """

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.port = free_port()
        self.seen: list[tuple[str, str, str]] = []
        app = create_simulator_app("openai", duration_s=0.3, api_keys=keys, content_size=4096)

        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                auth = dict(scope["headers"]).get(b"authorization", b"").decode()
                self.seen.append((scope["method"], scope["path"],
                                  auth.removeprefix("Bearer ").strip()))
            await app(scope, receive, send)

        config = uvicorn.Config(recording, host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off", ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> KeyedUpstream:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10, interval=0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sim/stats").json()  # type: ignore[no-any-return]


class GarbageUpstream:
    """An OpenAI-format upstream that answers with broken JSON where the prompt asks for it.

    ``[garbage-create]``: the create answer is truncated JSON; ``[noid-create]``: well-formed JSON
    without a job id. Any other create starts a job, and every retrieve of a job is answered with
    an HTML error page labelled as JSON. Bodies carry a fake secret that must never reach a client.
    """

    def __init__(self) -> None:
        self.creates = 0
        self.jobs: dict[str, dict[str, Any]] = {}
        self.retrieves: Counter[str] = Counter()
        self.deletes: list[str] = []
        self._lock = threading.Lock()
        upstream_ = self

        class Handler(QuietHandler):
            def answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                fields = json.loads(self.rfile.read(length) or b"{}")
                prompt = str(fields.get("prompt", ""))
                with upstream_._lock:
                    upstream_.creates += 1
                if "[garbage-create]" in prompt:
                    self.answer(200, f'{{"id": "gb_x", "detail": "{SECRET}", "status": '.encode())
                    return
                if "[noid-create]" in prompt:
                    self.answer(200, json.dumps({"object": "video", "status": "queued",
                                                 "detail": SECRET}).encode())
                    return
                job_id = f"gb_{uuid.uuid4().hex}"
                with upstream_._lock:
                    upstream_.jobs[job_id] = {"prompt": prompt}
                self.answer(200, json.dumps({
                    "id": job_id, "object": "video", "model": fields.get("model"),
                    "status": "queued", "progress": 0, "created_at": int(time.time()),
                    "size": fields.get("size"), "seconds": fields.get("seconds"),
                }).encode())

            def do_GET(self) -> None:
                job_id = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                with upstream_._lock:
                    upstream_.retrieves[job_id] += 1
                self.answer(200, f"<html>502 Bad Gateway {SECRET}</html>".encode())

            def do_DELETE(self) -> None:
                job_id = self.path.rstrip("/").rsplit("/", 1)[-1]
                with upstream_._lock:
                    upstream_.deletes.append(job_id)
                self.answer(200, json.dumps({"id": job_id, "object": "video.deleted",
                                             "deleted": True}).encode())

        self.http = ThreadedServer(Handler)

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> GarbageUpstream:
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"creates": self.creates, "deletes": list(self.deletes),
                    "jobs": {uid: dict(job) for uid, job in self.jobs.items()}}


# -- the dedicated gateway -------------------------------------------------------------------------
@dataclass
class Faulty:
    """A gateway whose groups each exercise one kind of upstream trouble.

    - official: "up-solo" (the flaky simulator) alone, so its failures reach the client;
    - failover: "up-first" (flaky, heavy weight) before "up-second" (spare);
    - breaker: "up-breaky" (flaky, heavy; opens after 2 failures for 2 s) before "up-backup";
    - dead: "up-dead", where nothing listens;
    - hang: "up-slow" (spare, timeout 1 s, heavy) before "up-other" (the session simulator);
    - keys: "up-keyed", a simulator that accepts only two keys, rotated by the gateway;
    - garbage: "up-garbage" (broken JSON, heavy) before "up-fallback" (the session simulator).
    """

    gw: Gateway
    flaky: Simulator
    spare: Simulator
    steady: Simulator
    keyed: KeyedUpstream
    garbage: GarbageUpstream
    exposure: Exposure


GROUPS = ("official", "failover", "breaker", "dead", "hang", "keys", "garbage")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator) -> Iterator[Faulty]:
    keys = ["sk-keyed-one-" + uuid.uuid4().hex[:8], "sk-keyed-two-" + uuid.uuid4().hex[:8]]
    with ExitStack() as stack:
        flaky = Simulator(flavor="openai", duration_s=0.3).start()
        stack.callback(flaky.stop)
        spare = Simulator(flavor="openai", duration_s=0.3).start()
        stack.callback(spare.stop)
        keyed = KeyedUpstream(keys).start()
        stack.callback(keyed.stop)
        garbage = GarbageUpstream().start()
        stack.callback(garbage.stop)
        calm = {"breaker_failures": NEVER_TRIPS}
        upstreams = [
            upstream("up-solo", flaky, ["official"], **calm),
            upstream("up-first", flaky, ["failover"], weight=10**6, **calm),
            upstream("up-second", spare, ["failover"], **calm),
            upstream("up-breaky", flaky, ["breaker"], weight=10**6, breaker_failures=2,
                     breaker_cooldown_s=BREAKER_COOLDOWN_S),
            upstream("up-backup", spare, ["breaker"], **calm),
            upstream("up-dead", flaky, ["dead"], base_url=f"http://127.0.0.1:{free_port()}/v1",
                     **calm),
            upstream("up-slow", spare, ["hang"], weight=10**9, timeout_s=1, **calm),
            upstream("up-other", simulator, ["hang"], **calm),
            upstream("up-keyed", flaky, ["keys"], base_url=keyed.base_url, api_key=None,
                     api_keys=keys, **calm),
            upstream("up-garbage", flaky, ["garbage"], base_url=garbage.base_url,
                     weight=10**9, **calm),
            upstream("up-fallback", simulator, ["garbage"], **calm),
        ]
        config = base_config(
            upstreams,
            groups={name: {"billing_modes": ["per_second"]} for name in GROUPS},
            jobs={"poll_interval_s": 0.3, "refresh_after_s": 0.2, "max_age_s": MAX_AGE_S,
                  "lease_s": 2, "poll_after_ms": 100},
        )
        gw = Gateway(tmp_path_factory.mktemp("faults"), config).start()
        stack.callback(gw.stop)
        forbidden = [SECRET, SIM_KEY, *keys, "sim_", "gb_", "127.0.0.1", "localhost",
                     *(u["name"] for u in upstreams)]
        for url in (flaky.url, spare.url, simulator.url, keyed.url, garbage.url):
            forbidden += [url, ":" + url.rsplit(":", 1)[1]]
        yield Faulty(gw, flaky, spare, simulator, keyed, garbage, Exposure(tuple(forbidden)))


@pytest.fixture(scope="module")
def shared_exposure(simulator: Simulator, compat_simulator: Simulator) -> Exposure:
    forbidden = [SECRET, SIM_KEY, "primary", "reseller", "sim_", "127.0.0.1", "localhost"]
    for sim in (simulator, compat_simulator):
        forbidden += [sim.url, f":{sim.port}"]
    return Exposure(tuple(forbidden))


# -- failures at create ----------------------------------------------------------------------------
class TestCreateFailures:
    @pytest.mark.parametrize(("upstream_status", "injected_by"), [
        (500, "prompt"), (502, "faults"), (503, "faults"), (429, "prompt"),
    ])
    def test_upstream_error_status_is_502_retryable_and_the_hold_released(
        self, faulty: Faulty, sdk: SdkFactory, upstream_status: int, injected_by: str
    ) -> None:
        gw, sim = faulty.gw, faulty.flaky
        token_id, token = gw.create_token(balance_usd="2")
        client = sdk(gw, token)
        prompt = tag(f"status {upstream_status}")
        if injected_by == "prompt":
            prompt += f" [status:{upstream_status}]"
        else:
            sim.faults(upstream_status, count=1)
        creates = sim.stats()["creates"]
        failovers = metric(gw, "gateway_upstream_failovers_total", upstream="up-solo")

        with pytest.raises(openai.InternalServerError) as info:
            client.videos.create(prompt=prompt)

        # The client: no job could start, so a retry is safe and advised.
        faulty.exposure.error(info.value.response, 502, "server_error", "upstream_error",
                              should_retry="true")
        assert sim.stats()["creates"] == creates + 1
        assert stats_jobs(sim.stats(), prompt) == []
        # The money: held for the attempt, released at once, and the job is nowhere to be seen.
        assert money(gw, token_id) == ("2.000000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "release"]
        assert client.videos.list().data == []
        # The operator: a warning tied to the request, and the failover counter.
        request_id = info.value.response.headers["x-request-id"]
        [line] = wait_logged(gw, "create failed over", request_id=request_id)
        assert (line["level"], line["upstream"]) == ("warning", "up-solo")
        assert line["reason"] == f"upstream answered {upstream_status}"
        assert metric(gw, "gateway_upstream_failovers_total", upstream="up-solo") == (
            failovers + 1)
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)

    def test_connection_refused_is_502_retryable_and_the_hold_released(
        self, faulty: Faulty, sdk: SdkFactory
    ) -> None:
        gw = faulty.gw
        token_id, token = gw.create_token(group="dead", balance_usd="2")
        client = sdk(gw, token)
        failovers = metric(gw, "gateway_upstream_failovers_total", upstream="up-dead")
        errors = metric(gw, "gateway_upstream_request_duration_seconds_count",
                        upstream="up-dead", operation="create", outcome="error")

        with pytest.raises(openai.InternalServerError) as info:
            client.videos.create(prompt=tag("nobody listens"))

        faulty.exposure.error(info.value.response, 502, "server_error", "upstream_error",
                              should_retry="true")
        assert money(gw, token_id) == ("2.000000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "release"]
        assert client.videos.list().data == []
        [line] = wait_logged(gw, "create failed over",
                             request_id=info.value.response.headers["x-request-id"])
        assert line["upstream"] == "up-dead"
        assert line["reason"].startswith("cannot connect")
        assert metric(gw, "gateway_upstream_failovers_total", upstream="up-dead") == (
            failovers + 1)
        assert metric(gw, "gateway_upstream_request_duration_seconds_count", upstream="up-dead",
                      operation="create", outcome="error") == errors + 1
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)

    def test_create_hanging_past_the_timeout_is_502_never_retried_nor_resubmitted(
        self, faulty: Faulty, sdk: SdkFactory
    ) -> None:
        gw, slow, other = faulty.gw, faulty.spare, faulty.steady
        token_id, token = gw.create_token(group="hang", balance_usd="2")
        sent: list[str] = []
        client = sdk(gw, token, max_retries=2, sent=sent)
        slow_creates, other_creates = slow.stats()["creates"], other.stats()["creates"]
        failovers = metric(gw, "gateway_upstream_failovers_total", upstream="up-slow")
        errors = metric(gw, "gateway_upstream_request_duration_seconds_count",
                        upstream="up-slow", operation="create", outcome="error")
        prompt = tag("stalls") + " [hang:3]"

        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as info:
            client.videos.create(prompt=prompt)
        elapsed = time.monotonic() - started

        # The upstream may have started the job: the SDK is told not to retry, and obeys.
        faulty.exposure.error(info.value.response, 502, "server_error", "upstream_error",
                              should_retry="false")
        assert sent == ["POST /v1/videos"]
        assert 1.0 <= elapsed < 2.5, elapsed
        # ... and the gateway did not send it to the second upstream of the group either.
        assert slow.stats()["creates"] == slow_creates + 1
        assert other.stats()["creates"] == other_creates
        assert money(gw, token_id) == ("2.000000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "release"]
        assert client.videos.list().data == []
        [line] = wait_logged(gw, "create outcome unknown",
                             request_id=info.value.response.headers["x-request-id"])
        assert (line["level"], line["upstream"]) == ("error", "up-slow")
        assert metric(gw, "gateway_upstream_request_duration_seconds_count", upstream="up-slow",
                      operation="create", outcome="error") == errors + 1
        assert metric(gw, "gateway_upstream_failovers_total", upstream="up-slow") == failovers
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)

    @pytest.mark.parametrize(("directive", "reason"), [
        ("[garbage-create]", "upstream answered with malformed JSON"),
        ("[noid-create]", "upstream answered without a job id"),
    ])
    def test_malformed_create_answer_is_502_never_retried_nor_resubmitted(
        self, faulty: Faulty, sdk: SdkFactory, directive: str, reason: str
    ) -> None:
        gw, garbage, fallback = faulty.gw, faulty.garbage, faulty.steady
        token_id, token = gw.create_token(group="garbage", balance_usd="2")
        sent: list[str] = []
        client = sdk(gw, token, max_retries=2, sent=sent)
        creates, fallback_creates = garbage.creates, fallback.stats()["creates"]

        with pytest.raises(openai.InternalServerError) as info:
            client.videos.create(prompt=f"{tag('garbled')} {directive}")

        faulty.exposure.error(info.value.response, 502, "server_error", "upstream_error",
                              should_retry="false")
        assert sent == ["POST /v1/videos"]
        assert garbage.creates == creates + 1
        assert fallback.stats()["creates"] == fallback_creates
        assert money(gw, token_id) == ("2.000000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "release"]
        [line] = wait_logged(gw, "create outcome unknown",
                             request_id=info.value.response.headers["x-request-id"])
        assert (line["upstream"], line["reason"]) == ("up-garbage", reason)
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)


# -- jobs that misbehave after they started --------------------------------------------------------
class TestRunningJobFaults:
    @pytest.mark.parametrize(("group", "directive", "upstream_name", "reason"), [
        ("official", "[poll-status:500]", "up-solo", "upstream answered 500"),
        ("garbage", "", "up-garbage", "upstream answered with malformed JSON"),
    ])
    def test_failing_polls_keep_the_job_running_and_held_until_max_age(
        self, faulty: Faulty, sdk: SdkFactory, group: str, directive: str, upstream_name: str,
        reason: str,
    ) -> None:
        gw = faulty.gw
        stats = faulty.flaky.stats if group == "official" else faulty.garbage.stats
        token_id, token = gw.create_token(group=group, balance_usd="2")
        client = sdk(gw, token)
        failures = metric(gw, "gateway_poll_failures_total", upstream=upstream_name)
        prompt = f"{tag('unpollable')} {directive}".strip()

        # Timed from before the create: the job's age runs from inside it, and a loaded
        # machine can take a second or more to answer.
        created = time.monotonic()
        video = client.videos.create(prompt=prompt)
        upstream_id = one_upstream_job(stats, prompt)

        # Polls keep failing: the job stays running with its money held, whoever polls.
        wait_for(lambda: metric(gw, "gateway_poll_failures_total",
                                upstream=upstream_name) >= failures + 3, timeout=MAX_AGE_S)
        while time.monotonic() - created < MAX_AGE_S - 2:
            assert client.videos.retrieve(video.id).status in UNFINISHED
            assert money(gw, token_id) == ("1.600000", "0.400000")
            time.sleep(0.2)
        assert job_kinds(gw, token_id, video.id) == ["hold"]
        polls = wait_logged(gw, "poll failed", job_id=video.id)
        assert {(p["level"], p["upstream"], p["reason"]) for p in polls} == {
            ("warning", upstream_name, reason)}

        # Only max_age ends it: failed as expired, refunded, cancelled upstream.
        expired = settled(client, video.id, timeout=MAX_AGE_S + 5)
        assert expired.status == "failed"
        assert expired.error is not None
        assert expired.error.code == "expired"
        assert money(gw, token_id) == ("2.000000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "refund"]
        wait_for(lambda: upstream_id in stats()["deletes"], timeout=15)
        [ended] = wait_logged(gw, "job ended by gateway", job_id=video.id)
        assert ended["reason"] == "expired"
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)

    def test_a_job_whose_age_runs_out_during_a_slow_poll_is_cancelled_upstream(
        self, make_gateway: Callable[..., Gateway], lone: Simulator, sdk: SdkFactory
    ) -> None:
        # One poll, out for 4 s (its lease outlasts it, so nobody polls again meanwhile): its
        # answer, still running, comes back past max_age and is what ends the job.
        gw = make_gateway([upstream("up-lone", lone, ["official"])],
                          jobs={**UNPOLLED_JOBS, "poll_interval_s": 0.3, "max_age_s": 3,
                                "lease_s": 60})
        token_id, token = gw.create_token(balance_usd="2")
        client = sdk(gw, token)
        prompt = tag("slow to the end") + " [never] [poll-delay:4]"

        video = client.videos.create(prompt=prompt)
        upstream_id = one_upstream_job(lone.stats, prompt)

        wait_for(lambda: money(gw, token_id) == ("2.000000", ZERO), timeout=20)
        assert lone.stats()["retrieves"][upstream_id] == 1
        expired = client.videos.retrieve(video.id)
        assert (expired.status, expired.error and expired.error.code) == ("failed", "expired")
        # The vendor hears of it: left running, it would render on and bill the operator.
        wait_for(lambda: upstream_id in lone.stats()["deletes"], timeout=10)
        [ended] = wait_logged(gw, "job ended by gateway", job_id=video.id)
        assert ended["reason"] == "expired"
        gw.assert_reconciles(token_id)

    def test_job_that_never_finishes_expires_at_max_age_and_is_refunded(
        self, faulty: Faulty, sdk: SdkFactory
    ) -> None:
        gw, sim = faulty.gw, faulty.flaky
        token_id, token = gw.create_token(balance_usd="2")
        client = sdk(gw, token)
        refunds = metric(gw, "gateway_settlements_total", kind="refund")
        prompt = tag("forever") + " [never]"

        video = client.videos.create(prompt=prompt)
        upstream_id = one_upstream_job(sim.stats, prompt)
        assert client.videos.retrieve(video.id).status in UNFINISHED
        assert money(gw, token_id) == ("1.600000", "0.400000")

        expired = settled(client, video.id, timeout=MAX_AGE_S + 5)

        assert expired.status == "failed"
        assert expired.error is not None
        assert expired.error.code == "expired"
        assert money(gw, token_id) == ("2.000000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "refund"]
        wait_for(lambda: upstream_id in sim.stats()["deletes"], timeout=5)
        [ended] = wait_logged(gw, "job ended by gateway", job_id=video.id)
        assert (ended["level"], ended["reason"]) == ("info", "expired")
        assert metric(gw, "gateway_settlements_total", kind="refund") >= refunds + 1
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)

    def test_unknown_upstream_status_never_surfaces_and_the_job_keeps_running(
        self, faulty: Faulty, sdk: SdkFactory
    ) -> None:
        gw, sim = faulty.gw, faulty.flaky
        token_id, token = gw.create_token(balance_usd="2")
        client = sdk(gw, token)
        retrieves = metric(gw, "gateway_upstream_request_duration_seconds_count",
                           upstream="up-solo", operation="retrieve", outcome="ok")
        prompt = tag("odd status") + " [unknown-status] [never]"

        video = client.videos.create(prompt=prompt)
        upstream_id = one_upstream_job(sim.stats, prompt)
        seen: set[str] = set()
        with httpx.Client(base_url=f"{gw.url}/v1", timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(8):
                response = http.get(f"/videos/{video.id}")
                assert response.status_code == 200, response.text
                faulty.exposure.no_leak(response)
                seen.add(response.json()["status"])
                time.sleep(0.1)
        with gw.admin() as admin:
            admin_view = admin.get(f"/admin/videos/{video.id}").json()

        assert seen <= set(UNFINISHED), seen
        assert admin_view["status"] in UNFINISHED
        assert money(gw, token_id) == ("1.600000", "0.400000")
        assert metric(gw, "gateway_upstream_request_duration_seconds_count", upstream="up-solo",
                      operation="retrieve", outcome="ok") > retrieves

        sim.finish(upstream_id, "completed")
        done = settled(client, video.id)
        assert done.status == "completed"
        assert money(gw, token_id) == ("1.600000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "capture"]
        [ended] = wait_logged(gw, "job ended", job_id=video.id)
        assert ended["status"] == "completed"
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)

    def test_content_transfer_breaking_halfway_reaches_the_client_incomplete(
        self, faulty: Faulty, sdk: SdkFactory
    ) -> None:
        gw, sim = faulty.gw, faulty.flaky
        size = 1024 * 1024
        token_id, token = gw.create_token(balance_usd="2")
        client = sdk(gw, token)
        failed_copies = metric(gw, "gateway_archive_retries_total")
        prompt = tag("snaps") + f" [content-break] [size:{size}] [duration:0.3]"
        whole_prompt = tag("whole") + " [size:5000] [duration:0.3]"

        video = client.videos.create(prompt=prompt)
        whole = client.videos.create(prompt=whole_prompt)
        assert settled(client, video.id).status == "completed"
        assert settled(client, whole.id).status == "completed"
        upstream_id = one_upstream_job(sim.stats, prompt)

        # The SDK either raises on the cut transfer or gets fewer bytes than announced.
        try:
            content = client.videos.download_content(video.id)
            body = content.read()
            declared = int(content.response.headers["content-length"])
            assert len(body) < declared, "a broken transfer looked complete"
        except (openai.APIConnectionError, httpx.HTTPError):
            pass
        received = bytearray()
        with httpx.Client(base_url=f"{gw.url}/v1", timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            try:
                with http.stream("GET", f"/videos/{video.id}/content") as response:
                    assert response.status_code == 200
                    assert int(response.headers["content-length"]) == size
                    faulty.exposure.no_leak(response, body=False)
                    for chunk in response.iter_raw():
                        received.extend(chunk)
            except httpx.HTTPError:
                pass
        assert len(received) < size
        assert bytes(received) == expected_content(upstream_id, size)[: len(received)]

        # The gateway stays healthy and keeps serving other content; the charge stands.
        assert httpx.get(f"{gw.url}/healthz").status_code == 200
        whole_id = one_upstream_job(sim.stats, whole_prompt)
        assert client.videos.download_content(whole.id).read() == expected_content(
            whole_id, 5000)
        assert client.videos.retrieve(video.id).status == "completed"
        assert money(gw, token_id) == ("1.200000", ZERO)
        assert kinds(gw, token_id) == ["topup", "hold", "hold", "capture", "capture"]
        # The operator: the broken relay is logged; the archive's failed copy is counted and
        # tried again later (the video is not stored).
        broke = wait_logged(gw, "content stream broke", job_id=video.id)
        assert broke[0]["level"] == "warning"
        wait_logged(gw, "archiving will be retried", job_id=video.id)
        wait_for(lambda: metric(gw, "gateway_archive_retries_total") >= failed_copies + 1,
                 timeout=5)
        with gw.admin() as admin:
            shown = admin.get(f"/admin/videos/{video.id}").json()
        assert (shown["content_stored"], shown["archive_state"]) == (False, "pending")
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)


# -- delete of a job the gateway has not seen end ------------------------------------------------
UNPOLLED_JOBS = {"poll_interval_s": 3600, "refresh_after_s": 3600, "max_age_s": 7200,
                 "lease_s": 2, "poll_after_ms": 100}


@pytest.fixture(scope="module")
def lone() -> Iterator[Simulator]:
    """A simulator of this module's own, whose retrieves the tests switch off and on."""
    sim = Simulator(flavor="openai", duration_s=0.3).start()
    yield sim
    sim.stop()


@pytest.fixture
def unpolled(make_gateway: Callable[..., Gateway], lone: Simulator) -> Iterator[Gateway]:
    """Neither its reconciler nor a client's retrieve asks the upstream within a test."""
    yield make_gateway([upstream("up-lone", lone, ["official"])], jobs=UNPOLLED_JOBS)
    lone.fail_retrieves(None)


def settlements(gw: Gateway, token_id: str, video_id: str) -> list[tuple[str, str | None]]:
    """(kind, note) of every entry that settled the job's hold."""
    return [(entry["kind"], entry["note"]) for entry in gw.ledger(token_id)
            if entry["job_id"] == video_id and entry["kind"] != "hold"]


class TestDeleteAsksTheUpstreamFirst:
    @pytest.mark.parametrize(("ending", "settled_as", "balance"), [
        ("completed", ("capture", None), "0.600000"),
        ("failed", ("refund", "upstream_failed"), "1.000000"),
    ])
    def test_a_job_the_upstream_ended_unseen_is_settled_on_its_word_then_deleted(
        self, unpolled: Gateway, lone: Simulator, sdk: SdkFactory, ending: str,
        settled_as: tuple[str, str | None], balance: str,
    ) -> None:
        token_id, token = unpolled.create_token(balance_usd="1")
        client = sdk(unpolled, token)
        prompt = tag(f"ended unseen {ending}") + " [never]"
        video = client.videos.create(prompt=prompt)
        upstream_id = one_upstream_job(lone.stats, prompt)
        lone.finish(upstream_id, ending)

        assert client.videos.delete(video.id).deleted is True

        # Completed: the upstream bills the operator for it, so the customer pays for it.
        assert settlements(unpolled, token_id, video.id) == [settled_as]
        assert money(unpolled, token_id) == (balance, ZERO)
        assert upstream_id in lone.stats()["deletes"]
        with pytest.raises(openai.NotFoundError):
            client.videos.retrieve(video.id)
        unpolled.assert_reconciles(token_id)

    def test_a_running_job_is_cancelled_upstream_and_refunded(
        self, unpolled: Gateway, lone: Simulator, sdk: SdkFactory
    ) -> None:
        token_id, token = unpolled.create_token(balance_usd="1")
        client = sdk(unpolled, token)
        prompt = tag("still running") + " [never]"
        video = client.videos.create(prompt=prompt)
        upstream_id = one_upstream_job(lone.stats, prompt)
        retrieves = lone.stats()["retrieves"].get(upstream_id, 0)

        client.videos.delete(video.id)

        assert lone.stats()["retrieves"][upstream_id] == retrieves + 1  # asked once, first
        assert settlements(unpolled, token_id, video.id) == [("refund", "deleted")]
        assert money(unpolled, token_id) == ("1.000000", ZERO)
        assert lone.job(upstream_id)["status"] == "deleted"
        unpolled.assert_reconciles(token_id)

    def test_an_upstream_that_cannot_be_asked_is_refunded_and_the_operator_told(
        self, unpolled: Gateway, lone: Simulator, sdk: SdkFactory
    ) -> None:
        token_id, token = unpolled.create_token(balance_usd="1")
        client = sdk(unpolled, token)
        video = client.videos.create(prompt=tag("unaskable") + " [never]")
        lone.fail_retrieves(503)
        try:
            client.videos.delete(video.id)
        finally:  # the simulator is the module's: the next test must find it answering
            lone.fail_retrieves(None)

        assert settlements(unpolled, token_id, video.id) == [("refund", "deleted")]
        assert money(unpolled, token_id) == ("1.000000", ZERO)
        [warned] = wait_logged(unpolled, "deleted job refunded without its upstream's answer",
                               job_id=video.id)
        assert (warned["level"], warned["upstream"]) == ("warning", "up-lone")
        unpolled.assert_reconciles(token_id)

    def test_a_job_last_seen_at_100_percent_stays_held_until_its_upstream_answers(
        self, make_gateway: Callable[..., Gateway], lone: Simulator, sdk: SdkFactory
    ) -> None:
        gw = make_gateway([upstream("up-lone", lone, ["official"])],
                          jobs={**UNPOLLED_JOBS, "poll_interval_s": 0.3, "refresh_after_s": 0.1})
        token_id, token = gw.create_token(balance_usd="1")
        client = sdk(gw, token)
        prompt = tag("at 100") + " [never] [progress:100]"
        video = client.videos.create(prompt=prompt)
        upstream_id = one_upstream_job(lone.stats, prompt)
        wait_for(lambda: client.videos.retrieve(video.id).progress == 100, timeout=15)

        lone.fail_retrieves(503)
        try:
            # A poll sent before the fault would answer the delete's own (they share a flight).
            wait_logged(gw, "poll failed", job_id=video.id)
            client.videos.delete(video.id)
            with pytest.raises(openai.NotFoundError):
                client.videos.retrieve(video.id)
            assert money(gw, token_id) == ("0.600000", "0.400000")
            wait_logged(gw, "deleted job kept held until its upstream answers", job_id=video.id)
        finally:
            lone.fail_retrieves(None)
        lone.finish(upstream_id, "completed")

        wait_for(lambda: money(gw, token_id) == ("0.600000", ZERO), timeout=10)
        assert settlements(gw, token_id, video.id) == [("capture", None)]
        gw.assert_reconciles(token_id)


# -- placement: failover, circuit breaker, key rotation --------------------------------------------
class TestPlacement:
    def test_503_from_the_first_upstream_moves_creates_to_the_second(
        self, faulty: Faulty, sdk: SdkFactory
    ) -> None:
        gw, first, second = faulty.gw, faulty.flaky, faulty.spare
        token_id, token = gw.create_token(group="failover", balance_usd="3")
        client = sdk(gw, token)
        failovers = metric(gw, "gateway_upstream_failovers_total", upstream="up-first")
        first.faults(503, count=2)
        prompts = [tag(f"failover {n}") + " [duration:0.3]" for n in range(3)]

        created = [client.videos.with_raw_response.create(prompt=prompt) for prompt in prompts]

        for raw in created:
            assert raw.status_code == 200
            faulty.exposure.no_leak(raw.http_response)
        videos = [raw.parse() for raw in created]
        # The two faulted creates went to the second upstream, the third back to the first.
        assert [len(stats_jobs(second.stats(), p)) for p in prompts] == [1, 1, 0]
        assert [len(stats_jobs(first.stats(), p)) for p in prompts] == [0, 0, 1]
        for video in videos:
            assert settled(client, video.id).status == "completed"
        assert money(gw, token_id) == ("1.800000", ZERO)
        assert Counter(kinds(gw, token_id)) == {"topup": 1, "hold": 3, "capture": 3}
        assert metric(gw, "gateway_upstream_failovers_total", upstream="up-first") == (
            failovers + 2)
        for raw in created[:2]:
            [line] = wait_logged(gw, "create failed over",
                                 request_id=raw.headers["x-request-id"])
            assert (line["upstream"], line["reason"]) == ("up-first", "upstream answered 503")
        assert logged(gw, "create failed over", request_id=created[2].headers["x-request-id"]) == []
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)

    def test_open_circuit_skips_the_failing_upstream_and_probes_it_after_the_cooldown(
        self, faulty: Faulty, sdk: SdkFactory
    ) -> None:
        gw, breaky, backup = faulty.gw, faulty.flaky, faulty.spare
        token_id, token = gw.create_token(group="breaker", balance_usd="5")
        client = sdk(gw, token)
        failovers = metric(gw, "gateway_upstream_failovers_total", upstream="up-breaky")
        breaky.faults(503, count=1000)
        videos: list[Video] = []
        request_ids: list[str] = []

        def create(label: str) -> str:
            prompt = tag(label) + " [duration:0.3]"
            raw = client.videos.with_raw_response.create(prompt=prompt)
            assert raw.status_code == 200
            videos.append(raw.parse())
            request_ids.append(raw.headers["x-request-id"])
            return prompt

        def creates() -> int:
            return int(breaky.stats()["creates"])

        try:
            start = creates()
            create("trip 1")
            create("trip 2")
            assert creates() == start + 2  # two failures in a row open the circuit
            skipped = [create(f"skipped {n}") for n in range(3)]
            assert creates() == start + 2, "an open circuit still received creates"
            assert all(len(stats_jobs(backup.stats(), p)) == 1 for p in skipped)

            time.sleep(BREAKER_COOLDOWN_S + 0.1)
            create("failed probe")
            assert creates() == start + 3  # one probe after the cooldown; it fails
            create("reopened")
            assert creates() == start + 3
        finally:
            breaky.faults(None)

        time.sleep(BREAKER_COOLDOWN_S + 0.1)
        probe = create("good probe")
        after = create("closed again")
        assert creates() == start + 5
        assert len(stats_jobs(breaky.stats(), probe)) == 1
        assert len(stats_jobs(breaky.stats(), after)) == 1

        for video in videos:
            assert settled(client, video.id).status == "completed"
        assert money(gw, token_id) == ("1.400000", ZERO)
        assert Counter(kinds(gw, token_id)) == {"topup": 1, "hold": 9, "capture": 9}
        assert metric(gw, "gateway_upstream_failovers_total", upstream="up-breaky") == (
            failovers + 3)
        wait_logged(gw, "create failed over", request_id=request_ids[5])
        lines = [logged(gw, "create failed over", request_id=request_id)
                 for request_id in request_ids]
        circuits = [line[0]["circuit"] for line in lines if line]
        assert circuits == ["closed", "open", "open"], circuits
        assert [bool(line) for line in lines] == [True, True, False, False, False, True,
                                                  False, False, False]
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)

    def test_api_keys_alternate_and_every_later_call_uses_the_creating_key(
        self, faulty: Faulty, sdk: SdkFactory
    ) -> None:
        gw, keyed = faulty.gw, faulty.keyed
        token_id, token = gw.create_token(group="keys", balance_usd="3")
        client = sdk(gw, token)
        prompts = [tag(f"keyed {n}") + " [duration:0.3]" for n in range(4)]

        videos = [client.videos.create(prompt=prompt) for prompt in prompts]
        upstream_ids = [one_upstream_job(keyed.stats, prompt) for prompt in prompts]
        create_keys = [keyed.stats()["jobs"][uid]["key"] for uid in upstream_ids]

        assert Counter(create_keys) == Counter(keyed.keys * 2), create_keys
        assert all(a != b for a, b in pairwise(create_keys))
        # Retrieves must be authorized for the jobs to complete at all.
        for video, upstream_id in zip(videos, upstream_ids, strict=True):
            assert settled(client, video.id).status == "completed"
            raw = client.videos.with_raw_response.download_content(video.id)
            assert raw.content == expected_content(upstream_id, 4096)
            faulty.exposure.no_leak(raw.http_response)
        for upstream_id, key in zip(upstream_ids, create_keys, strict=True):
            later = [(method, path, used) for method, path, used in keyed.seen
                     if path.startswith(f"/v1/videos/{upstream_id}")]
            assert f"/v1/videos/{upstream_id}" in {path for _, path, _ in later}
            assert f"/v1/videos/{upstream_id}/content" in {path for _, path, _ in later}
            assert {used for _, _, used in later} == {key}, later
        upstream_calls = [seen for seen in keyed.seen if seen[1].startswith("/v1/")]
        assert {used for _, _, used in upstream_calls} == set(keyed.keys)
        assert money(gw, token_id) == ("1.400000", ZERO)
        assert Counter(kinds(gw, token_id)) == {"topup": 1, "hold": 4, "capture": 4}
        gw.assert_reconciles(token_id)
        reconcile_ok(gw)


# -- hostile clients (on the shared gateway) -------------------------------------------------------
def raw_client(gw: Gateway, token: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def multipart(boundary: str, parts: list[tuple[bytes, bytes]]) -> bytes:
    """A multipart body from raw (name, value) bytes, so any byte can be sent."""
    body = b""
    for name, value in parts:
        body += (f"--{boundary}\r\n".encode() + b'Content-Disposition: form-data; name="'
                 + name + b'"\r\n\r\n' + value + b"\r\n")
    return body + f"--{boundary}--\r\n".encode()


def nothing_started(gw: Gateway, sim: Simulator, token_id: str, creates: int) -> None:
    assert sim.stats()["creates"] == creates, "a refused request reached the upstream"
    assert kinds(gw, token_id) == ["topup"]
    assert money(gw, token_id) == ("2.000000", ZERO)


class TestHostileClients:
    @pytest.mark.parametrize("path", [
        "/v1/videos/..%2F..%2Fadmin/tokens",
        "/v1/videos/%2e%2e%2f%2e%2e%2fadmin%2ftokens",
        "/v1/videos/%2e%2e/%2e%2e/admin/tokens",
        "/v1/videos/..%5c..%5cadmin%5ctokens",
        "/v1/videos/%252e%252e%252fadmin%252ftokens",
        "/v1/videos/%00",
        "/v1/videos/%ff%fe",
        "/v1/videos/video_x%00y/content",
        "/v1/videos/%2e%2e",
        "/v1//admin/tokens",
    ])
    def test_path_tricks_are_404_in_the_envelope_and_open_nothing(
        self, gateway: Gateway, shared_exposure: Exposure, path: str
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            for method in ("GET", "DELETE", "POST"):
                response = http.request(method, path, json={"prompt": "x"})
                assert response.status_code in (404, 405), response.text
                code = "not_found" if response.status_code == 404 else "method_not_allowed"
                error = shared_exposure.error(response, response.status_code,
                                              "invalid_request_error", code,
                                              response.json()["error"]["param"])
                assert error["param"] in (None, "video_id"), error
                assert "tok_" not in response.text
                assert "balance_usd" not in response.text
        assert kinds(gateway, token_id) == ["topup"]

    def test_guessed_ids_and_other_tokens_ids_are_404_everywhere(
        self, gateway: Gateway, shared_exposure: Exposure
    ) -> None:
        owner_id, owner_token = gateway.create_token(balance_usd="2")
        other_id, other_token = gateway.create_token(balance_usd="2")
        video = gateway.client(owner_token).videos.create(prompt=tag("mine") + " [never]")
        guesses = [video.id, video.id.upper(), video.id + "0", video.id[:-1],
                   video.id.replace("video_", ""), "video_" + "0" * 32, f"{video.id}%20",
                   f"{video.id}%00"]
        with no_server_errors(gateway), raw_client(gateway, other_token) as http:
            for guess in guesses:
                for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", ""),
                                       ("POST", "/remix")):
                    response = http.request(method, f"/v1/videos/{guess}{suffix}",
                                            json={"prompt": "steal"})
                    shared_exposure.error(response, 404, "invalid_request_error", "not_found",
                                          "video_id")
                    assert owner_id not in response.text
            listed = http.get("/v1/videos", params={"after": video.id})
            shared_exposure.error(listed, 404, "invalid_request_error", "not_found", "after")
        assert kinds(gateway, other_id) == ["topup"]
        # The owner's job was untouched by all of it.
        assert gateway.client(owner_token).videos.retrieve(video.id).status in UNFINISHED
        assert money(gateway, owner_id) == ("1.600000", "0.400000")
        gateway.client(owner_token).videos.delete(video.id)
        assert money(gateway, owner_id) == ("2.000000", ZERO)
        gateway.assert_reconciles(owner_id)
        gateway.assert_reconciles(other_id)

    @pytest.mark.parametrize(("query", "status", "code", "param"), [
        ({"limit": str(10**9)}, 400, "invalid_value", "limit"),
        ({"limit": "-1"}, 400, "invalid_value", "limit"),
        ({"limit": "0"}, 400, "invalid_value", "limit"),
        ({"limit": "abc"}, 400, "invalid_value", "limit"),
        ({"limit": "1e3"}, 400, "invalid_value", "limit"),
        ({"limit": "9" * 40}, 400, "invalid_value", "limit"),
        ({"order": "desc; DROP TABLE jobs"}, 400, "invalid_value", "order"),
        ({"after": "video_nonexistent"}, 404, "not_found", "after"),
        ({"after": "' OR 1=1 --"}, 404, "not_found", "after"),
        ({"after": "video_%' OR '1'='1"}, 404, "not_found", "after"),
    ])
    def test_odd_list_parameters_are_refused_in_the_envelope(
        self, gateway: Gateway, shared_exposure: Exposure, query: dict[str, str], status: int,
        code: str, param: str,
    ) -> None:
        neighbour_id, neighbour_token = gateway.create_token(balance_usd="2")
        neighbour = gateway.client(neighbour_token)
        video = neighbour.videos.create(prompt=tag("neighbour") + " [never]")
        _, token = gateway.create_token(balance_usd="2")
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            response = http.get("/v1/videos", params=query)
            shared_exposure.error(response, status, "invalid_request_error", code, param)
            assert "neighbour" not in response.text
            # A normal list still works, and shows nothing of other tokens.
            listed = http.get("/v1/videos", params={"limit": "100"})
            assert listed.status_code == 200
            assert listed.json()["data"] == []
        neighbour.videos.delete(video.id)
        assert money(gateway, neighbour_id) == ("2.000000", ZERO)
        gateway.assert_reconciles(neighbour_id)

    def test_non_utf8_json_body_is_400(self, gateway: Gateway, simulator: Simulator,
                                       shared_exposure: Exposure) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        creates = simulator.stats()["creates"]
        bodies = [b'{"prompt": "caf\xe9 \xff\xfe"}', b"\xff\xfe{\x00\"\x00",
                  b'{"prompt": "ok", "model": "sora-2\xc3\x28"}']
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            for body in bodies:
                response = http.post("/v1/videos", content=body,
                                     headers={"content-type": "application/json"})
                shared_exposure.error(response, 400, "invalid_request_error", "invalid_value",
                                      None)
        nothing_started(gateway, simulator, token_id, creates)
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize(("fields", "param"), [
        ({"prompt": '"a lone surrogate \\ud800 in the prompt"'}, "prompt"),
        ({"prompt": '"x"', "metadata": '"{\\"k\\": \\"\\udfff\\"}"'}, "metadata"),
        ({"prompt": '"x"', "model": '"sora-2\\udc80"'}, "model"),
    ])
    def test_json_strings_that_cannot_be_utf8_are_400_and_hold_nothing(
        self, gateway: Gateway, simulator: Simulator, shared_exposure: Exposure,
        fields: dict[str, str], param: str,
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        creates = simulator.stats()["creates"]
        body = "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            response = http.post("/v1/videos", content=body.encode(),
                                 headers={"content-type": "application/json"})
            shared_exposure.error(response, 400, "invalid_request_error", "invalid_value", param)
            assert http.get("/v1/videos").json()["data"] == []
        nothing_started(gateway, simulator, token_id, creates)
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize("encoding", ["json", "multipart"])
    def test_nul_character_in_a_prompt_is_refused_or_kept_never_a_500(
        self, gateway: Gateway, simulator: Simulator, shared_exposure: Exposure, encoding: str
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        prompt = tag("nul") + " a\x00b [never]"
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            if encoding == "json":
                response = http.post("/v1/videos", json={"prompt": prompt})
            else:
                response = http.post("/v1/videos", data={"prompt": prompt},
                                     files={"unused": ("x.txt", b"", "text/plain")})
            assert response.status_code in (200, 400), response.text
            if response.status_code == 400:
                shared_exposure.error(response, 400, "invalid_request_error", "invalid_value",
                                      "prompt")
                assert kinds(gateway, token_id) == ["topup"]
            else:
                # Accepted: then it is a real job, held, readable and listed like any other.
                video_id = response.json()["id"]
                assert http.get(f"/v1/videos/{video_id}").status_code == 200
                assert [v["id"] for v in http.get("/v1/videos").json()["data"]] == [video_id]
                assert money(gateway, token_id) == ("1.600000", "0.400000")
                assert http.delete(f"/v1/videos/{video_id}").status_code == 200
                assert money(gateway, token_id) == ("2.000000", ZERO)
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize(("parts", "param"), [
        ([(b"prompt", b"caf\xe9 \xff\xfe [never]")], "prompt"),
        ([(b"prompt", b"fine"), (b"model", b"sora-2\xff")], "model"),
        ([(b"prompt", b"fine"), (b"size", b"720x1280\xc3")], "size"),
        ([(b"prompt", b"fine"), (b"seconds", b"4\xa0")], "seconds"),
        ([(b"pr\xffompt", b"fine")], "prompt"),
    ])
    def test_non_utf8_multipart_fields_are_400(
        self, gateway: Gateway, simulator: Simulator, shared_exposure: Exposure,
        parts: list[tuple[bytes, bytes]], param: str,
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        creates = simulator.stats()["creates"]
        boundary = uuid.uuid4().hex
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            response = http.post("/v1/videos", content=multipart(boundary, parts), headers={
                "content-type": f"multipart/form-data; boundary={boundary}"})
            shared_exposure.error(response, 400, "invalid_request_error", "invalid_value", param)
        nothing_started(gateway, simulator, token_id, creates)
        gateway.assert_reconciles(token_id)

    def test_admin_token_is_refused_on_every_public_route(
        self, gateway: Gateway, shared_exposure: Exposure
    ) -> None:
        _, token = gateway.create_token(balance_usd="2")
        video = gateway.client(token).videos.create(prompt=tag("target") + " [duration:0.3]")
        routes = [("GET", f"/v1/videos/{video.id}"), ("GET", f"/v1/videos/{video.id}/content"),
                  ("DELETE", f"/v1/videos/{video.id}"), ("POST", f"/v1/videos/{video.id}/remix"),
                  ("POST", "/v1/videos/edits"), ("POST", "/v1/videos/extensions"),
                  ("GET", "/v1/videos/characters/char_x"), ("GET", "/v1/me"),
                  ("GET", "/v1/dashboard/billing/subscription"),
                  ("GET", "/v1/dashboard/billing/usage")]
        with no_server_errors(gateway), raw_client(gateway, ADMIN_TOKEN) as http:
            for method, path in routes:
                response = http.request(method, path, json={"prompt": "as admin"})
                shared_exposure.error(response, 401, "invalid_request_error", "invalid_api_key")
        assert gateway.client(token).videos.retrieve(video.id).id == video.id

    def test_gateway_token_is_refused_on_every_operator_route(
        self, gateway: Gateway, shared_exposure: Exposure
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        video = gateway.client(token).videos.create(prompt=tag("own") + " [duration:0.3]")
        routes = ["/admin/videos", f"/admin/videos/{video.id}",
                  f"/admin/videos/{video.id}/content", "/admin/usage",
                  f"/admin/usage?token_id={token_id}&format=csv", "/admin/reconcile"]
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            for path in routes:
                response = http.get(path)
                shared_exposure.error(response, 401, "invalid_request_error", "invalid_api_key")
                assert video.id not in response.text

    def test_oversized_header_is_refused_with_a_4xx(self, gateway: Gateway) -> None:
        _, token = gateway.create_token(balance_usd="2")
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            response = http.get("/v1/videos", headers={"x-filler": "a" * 100_000})
            assert 400 <= response.status_code < 500, (
                f"a 100 KB header was answered {response.status_code}")
            # The gateway is fine afterwards.
            assert http.get("/v1/videos").status_code == 200

    def test_more_than_50_multipart_fields_is_400(
        self, gateway: Gateway, simulator: Simulator, shared_exposure: Exposure
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        creates = simulator.stats()["creates"]
        boundary = uuid.uuid4().hex
        extra = [(f"field{n}".encode(), b"v") for n in range(60)]
        parts = [(b"prompt", tag("crowded").encode() + b" [never]"), *extra]
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            response = http.post("/v1/videos", content=multipart(boundary, parts), headers={
                "content-type": f"multipart/form-data; boundary={boundary}"})
            error = shared_exposure.error(response, 400, "invalid_request_error",
                                          response.json()["error"]["code"], None)
            assert error["code"] in ("invalid_request", "invalid_value"), error
            assert "fields" in error["message"].lower()
        nothing_started(gateway, simulator, token_id, creates)
        gateway.assert_reconciles(token_id)

    def test_more_than_four_file_parts_is_400(
        self, gateway: Gateway, simulator: Simulator, shared_exposure: Exposure
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        creates = simulator.stats()["creates"]
        files = [("input_reference", (f"f{n}.png", b"\x89PNG", "image/png")) for n in range(6)]
        with no_server_errors(gateway), raw_client(gateway, token) as http:
            response = http.post("/v1/videos", data={"prompt": tag("files") + " [never]"},
                                 files=files)
            error = shared_exposure.error(response, 400, "invalid_request_error",
                                          response.json()["error"]["code"],
                                          response.json()["error"]["param"])
            assert error["code"] in ("invalid_request", "invalid_value"), error
        nothing_started(gateway, simulator, token_id, creates)
        gateway.assert_reconciles(token_id)
