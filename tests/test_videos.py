"""The Video object, content streaming, listing, deletion, polling load and upstream placement."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import Video
from PIL import Image

from gateway.simulator import expected_content, iter_content
from tests.conftest import wait_for
from tests.support.servers import (
    SIM_KEY,
    Gateway,
    QuietHandler,
    Simulator,
    ThreadedServer,
    base_config,
    free_port,
    upstream,
)

VIDEO_FIELDS = {
    "id", "object", "model", "status", "progress", "created_at", "completed_at", "expires_at",
    "size", "seconds", "quality", "prompt", "remixed_from_video_id", "error",
}
STATUSES = {"queued", "in_progress", "completed", "failed"}
RUNNING = {"queued", "in_progress"}
TERMINAL = ("completed", "failed")
MIB = 1024 * 1024


# -- helpers -------------------------------------------------------------------------------------
def _tag() -> str:
    return uuid.uuid4().hex[:12]


def _http(gw: Gateway, token: str) -> httpx.Client:
    """Raw HTTP against the gateway's /v1, for what the SDK cannot express or hides."""
    return httpx.Client(base_url=f"{gw.url}/v1", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)


def _upstream_id(sim: Simulator, prompt: str) -> str:
    """The simulator's id of the one job created with this prompt."""
    def find() -> str | None:
        found = [uid for uid, job in sim.stats()["jobs"].items() if job["prompt"] == prompt]
        assert len(found) <= 1, f"prompt reached the upstream {len(found)} times"
        return found[0] if found else None

    return str(wait_for(find, timeout=5, interval=0.05))


def _settled(client: OpenAI, video_id: str, timeout: float = 15) -> Video:
    def check() -> Video | None:
        video = client.videos.retrieve(video_id)
        assert video.status in STATUSES
        return video if video.status in TERMINAL else None

    return wait_for(check, timeout=timeout, interval=0.05)  # type: ignore[no-any-return]


def _completed(client: OpenAI, prompt: str, **fields: Any) -> Video:
    video = client.videos.create(prompt=prompt, **fields)
    done = _settled(client, video.id)
    assert done.status == "completed", done
    return done


def _money(gw: Gateway, token_id: str) -> tuple[str, str]:
    state = gw.token(token_id)
    return state["balance_usd"], state["held_usd"]


def _assert_held(gw: Gateway, token_id: str, video_id: str, amount: str, balance: str) -> None:
    """The create held ``amount`` for this video (whether or not it has settled since)."""
    holds = [entry["amount_usd"] for entry in gw.ledger(token_id)
             if entry["kind"] == "hold" and entry["job_id"] == video_id]
    assert holds == [amount]
    assert gw.token(token_id)["balance_usd"] == balance


def _kinds(gw: Gateway, token_id: str) -> list[str]:
    return [entry["kind"] for entry in gw.ledger(token_id)]


def _assert_api_error(exc: openai.APIStatusError, status: int, type_: str, code: str) -> None:
    assert exc.status_code == status
    assert (exc.type, exc.code) == (type_, code), exc.body
    assert exc.response.headers.get("x-request-id")


def _assert_error_response(response: httpx.Response, status: int, type_: str, code: str,
                           param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (type_, code, param), error
    assert isinstance(error["message"], str)
    assert error["message"]


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class _RssSampler:
    """Samples a process's resident set size in a thread while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = _rss_bytes(pid)
        self.peak = self.baseline
        self.samples = 0
        self._running = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self._running:
            self.peak = max(self.peak, _rss_bytes(self.pid))
            self.samples += 1
            time.sleep(0.005)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def __enter__(self) -> _RssSampler:
        self._running = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running = False
        self._thread.join()


def _sha256_of_simulated(upstream_id: str, size: int) -> str:
    digest = hashlib.sha256()
    for chunk in iter_content(upstream_id, size, 0, size, chunk=4 * MIB):
        digest.update(chunk)
    return digest.hexdigest()


_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "accept-encoding",
                "content-encoding", "keep-alive"}


class _RecordingProxy:
    """A loopback HTTP proxy in front of a simulator that records each request's API key."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(QuietHandler):
            def forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                key = self.headers.get("authorization", "").removeprefix("Bearer ").strip()
                with proxy._lock:
                    proxy.requests.append((self.command, self.path.split("?")[0], key))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                answer = httpx.request(self.command, proxy.target + self.path, headers=headers,
                                       content=body, timeout=30)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in _HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = forward
            do_POST = forward
            do_DELETE = forward

        self.http = ThreadedServer(Handler)

    @property
    def base_url(self) -> str:
        return f"{self.http.url}/v1"

    def __enter__(self) -> _RecordingProxy:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    def keys_for(self, upstream_id: str) -> list[tuple[str, str, str]]:
        with self._lock:
            return [r for r in self.requests if r[1].startswith(f"/v1/videos/{upstream_id}")]


@pytest.fixture(scope="module")
def finished(gateway: Gateway, simulator: Simulator) -> Iterator[dict[str, Any]]:
    """One completed 300000-byte video shared by the read-only content tests."""
    _, token = gateway.create_token(balance_usd="5")
    client = gateway.client(token)
    prompt = f"content fixture {_tag()} [size:300000] [duration:0.2]"
    video = _completed(client, prompt)
    upstream_id = _upstream_id(simulator, prompt)
    yield {"token": token, "client": client, "video": video, "upstream_id": upstream_id,
           "size": 300000, "bytes": expected_content(upstream_id, 300000)}
    client.close()


@dataclass
class Dedicated:
    """A gateway process of this module's own, with upstreams for placement and key tests."""

    gw: Gateway
    flaky: Simulator
    keyed: Simulator
    proxy: _RecordingProxy
    keys: list[str]


@pytest.fixture(scope="module")
def dedicated(tmp_path_factory: pytest.TempPathFactory,
              simulator: Simulator) -> Iterator[Dedicated]:
    """Group official: "dead" (unreachable) before "flaky" before "steady" by weight.

    Group restricted: only "steady" (the shared simulator). Group budget: only "keyed", a
    private simulator behind a recording proxy, with two rotated API keys.
    """
    keys = ["sk-rotate-one-" + _tag(), "sk-rotate-two-" + _tag()]
    with ExitStack() as stack:
        flaky = Simulator(flavor="openai", duration_s=0.2).start()
        stack.callback(flaky.stop)
        keyed = Simulator(flavor="openai", duration_s=0.2).start()
        stack.callback(keyed.stop)
        proxy = stack.enter_context(_RecordingProxy(keyed.url))
        upstreams = [
            {**upstream("dead", simulator, ["official"]), "weight": 10**9,
             "base_url": f"http://127.0.0.1:{free_port()}/v1"},
            upstream("flaky", flaky, ["official"], weight=10**6),
            upstream("steady", simulator, ["official", "restricted"]),
            {**upstream("keyed", keyed, ["budget"]), "base_url": proxy.base_url,
             "api_key": None, "api_keys": keys},
        ]
        gw = Gateway(tmp_path_factory.mktemp("dedicated"), base_config(upstreams)).start()
        stack.callback(gw.stop)
        yield Dedicated(gw=gw, flaky=flaky, keyed=keyed, proxy=proxy, keys=keys)


# -- the Video object ----------------------------------------------------------------------------
class TestVideoObject:
    def test_every_field_is_emitted_and_null_where_unset_through_the_lifecycle(
        self, gateway: Gateway
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="3")
        client = gateway.client(token)
        prompt = f"object shape {_tag()} [duration:0.6]"

        raw = client.videos.with_raw_response.create(prompt=prompt)
        created = json.loads(raw.text)
        assert raw.status_code == 200
        assert set(created) >= VIDEO_FIELDS, VIDEO_FIELDS - set(created)
        assert created["object"] == "video"
        assert created["status"] in RUNNING
        assert (created["model"], created["size"], created["seconds"]) == (
            "sora-2", "720x1280", "4")
        assert created["prompt"] == prompt
        assert 0 <= created["progress"] <= 100
        assert isinstance(created["created_at"], int)
        for unset in ("completed_at", "expires_at", "remixed_from_video_id", "error"):
            assert created[unset] is None, unset
        assert raw.headers["openai-poll-after-ms"] == "100"
        _assert_held(gateway, token_id, created["id"], "0.400000", "2.600000")

        with _http(gateway, token) as http:
            seen: list[dict[str, Any]] = []

            def finished_raw() -> dict[str, Any] | None:
                response = http.get(f"/videos/{created['id']}")
                assert response.status_code == 200, response.text
                assert response.headers["openai-poll-after-ms"] == "100"
                body: dict[str, Any] = response.json()
                seen.append(body)
                return body if body["status"] in TERMINAL else None

            done = wait_for(finished_raw, timeout=10, interval=0.05)
        for body in seen:
            assert set(body) >= VIDEO_FIELDS
            assert body["status"] in STATUSES
            assert 0 <= body["progress"] <= 100
            assert body["id"] == created["id"]
        assert done["status"] == "completed"
        assert done["progress"] == 100
        assert done["error"] is None
        assert isinstance(done["completed_at"], int)
        assert done["completed_at"] >= done["created_at"]
        assert isinstance(done["expires_at"], int)
        assert done["expires_at"] > done["completed_at"]
        assert done["remixed_from_video_id"] is None
        assert _money(gateway, token_id) == ("2.600000", "0.000000")
        assert _kinds(gateway, token_id) == ["topup", "hold", "capture"]
        gateway.assert_reconciles(token_id)

    def test_failed_video_carries_an_error_object_and_is_refunded(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        client = gateway.client(token)
        video = client.videos.create(prompt=f"doomed {_tag()} [fail] [duration:0.2]")
        _assert_held(gateway, token_id, video.id, "0.400000", "0.600000")

        failed = _settled(client, video.id)

        assert failed.status == "failed"
        with _http(gateway, token) as http:
            body = http.get(f"/videos/{video.id}").json()
        assert set(body) >= VIDEO_FIELDS
        assert body["error"] == {"code": "upstream_failed",
                                 "message": "The video could not be generated."}
        assert body["status"] == "failed"
        assert isinstance(body["completed_at"], int)
        assert _money(gateway, token_id) == ("1.000000", "0.000000")
        assert _kinds(gateway, token_id) == ["topup", "hold", "refund"]
        gateway.assert_reconciles(token_id)

    def test_ids_are_minted_by_the_gateway_with_128_random_bits(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token)
        ids = []
        for _ in range(3):
            prompt = f"id check {_tag()} [duration:0.2]"
            video = client.videos.create(prompt=prompt)
            upstream_id = _upstream_id(simulator, prompt)
            assert video.id != upstream_id
            assert upstream_id.removeprefix("sim_") not in video.id
            ids.append(video.id)
        for video_id in ids:
            assert video_id.startswith("video_")
            assert re.fullmatch(r"video_[0-9a-f]{32,}", video_id), video_id
        assert len(set(ids)) == 3
        for video_id in ids:
            assert _settled(client, video_id).status == "completed"
        assert _money(gateway, token_id) == ("0.800000", "0.000000")
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize(("group", "upstream_name"), [("official", "primary"),
                                                          ("resale", "reseller")])
    def test_no_upstream_id_name_url_or_key_reaches_the_client(
        self, gateway: Gateway, simulator: Simulator, compat_simulator: Simulator, group: str,
        upstream_name: str,
    ) -> None:
        sim = simulator if group == "official" else compat_simulator
        token_id, token = gateway.create_token(group=group, balance_usd="5")
        client = gateway.client(token)
        prompt = f"leak check {_tag()} [duration:0.2]"
        exposed: list[str] = []

        def keep(response: Any) -> None:
            exposed.append(response.text)
            exposed.append("\n".join(f"{k}: {v}" for k, v in response.headers.items()))

        raw = client.videos.with_raw_response.create(prompt=prompt)
        keep(raw)
        video_id = json.loads(raw.text)["id"]
        upstream_id = _upstream_id(sim, prompt)
        _settled(client, video_id)
        with _http(gateway, token) as http:
            for path in (f"/videos/{video_id}", "/videos"):
                response = http.get(path)
                assert response.status_code == 200
                keep(response)
            content = http.get(f"/videos/{video_id}/content")
            assert content.status_code == 200
            exposed.append("\n".join(f"{k}: {v}" for k, v in content.headers.items()))
            ranged = http.get(f"/videos/{video_id}/content", headers={"Range": "bytes=0-9"})
            assert ranged.status_code == 206
            exposed.append("\n".join(f"{k}: {v}" for k, v in ranged.headers.items()))
            remix = http.post(f"/videos/{video_id}/remix",
                              json={"prompt": f"remix {_tag()} [duration:0.2]"})
            assert remix.status_code == 200, remix.text
            keep(remix)
            assert remix.json()["remixed_from_video_id"] == video_id
            remix_id = remix.json()["id"]
            # An upstream refusal is relayed, but only as a sanitized message.
            refused = http.post("/videos", json={"prompt": f"refused {_tag()} [status:400]"})
            assert refused.status_code == 400
            keep(refused)
            missing = http.get("/videos/video_0000/content")
            keep(missing)
        _settled(client, remix_id)

        text = "\n".join(exposed)
        forbidden = [upstream_id, "sim_", upstream_name, f"127.0.0.1:{sim.port}", sim.base_url,
                     SIM_KEY, "sk-sim", "sk-upstream-secret"]
        for needle in forbidden:
            assert needle.lower() not in text.lower(), f"{needle!r} reached the client"
        gateway.assert_reconciles(token_id)


# -- downloading content -------------------------------------------------------------------------
class TestContentDownload:
    def test_download_content_returns_the_upstream_bytes_exactly(
        self, finished: dict[str, Any]
    ) -> None:
        client: OpenAI = finished["client"]
        content = client.videos.download_content(finished["video"].id)
        assert content.response.status_code == 200
        assert content.response.headers["content-type"] == "video/mp4"
        assert content.response.headers["content-length"] == str(finished["size"])
        assert content.content == finished["bytes"]
        assert content.content[4:8] == b"ftyp"

    @pytest.mark.parametrize(("variant", "media_type", "pil_format"),
                             [("thumbnail", "image/webp", "WEBP"),
                              ("spritesheet", "image/jpeg", "JPEG")])
    def test_preview_variants_are_real_images_of_their_type(
        self, finished: dict[str, Any], variant: str, media_type: str, pil_format: str
    ) -> None:
        client: OpenAI = finished["client"]
        content = client.videos.download_content(finished["video"].id, variant=variant)  # type: ignore[arg-type]
        assert content.response.status_code == 200
        assert content.response.headers["content-type"] == media_type
        image = Image.open(io.BytesIO(content.content))
        image.load()
        assert image.format == pil_format
        assert image.size == (64, 36)

    @pytest.mark.parametrize(("variant", "media_type"), [("video", "video/mp4"),
                                                         ("thumbnail", "image/webp"),
                                                         ("spritesheet", "image/jpeg")])
    def test_accept_application_binary_is_answered_with_the_real_type(
        self, gateway: Gateway, finished: dict[str, Any], variant: str, media_type: str
    ) -> None:
        with _http(gateway, finished["token"]) as http:
            response = http.get(f"/videos/{finished['video'].id}/content",
                                params={"variant": variant},
                                headers={"Accept": "application/binary"})
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == media_type
        assert int(response.headers["content-length"]) == len(response.content) > 0

    @pytest.mark.parametrize(("range_header", "start", "end"),
                             [("bytes=0-99", 0, 100), ("bytes=100-", 100, 300000),
                              ("bytes=-50", 299950, 300000), ("bytes=299990-400000", 299990,
                                                              300000)])
    def test_range_requests_are_answered_with_206_and_the_exact_slice(
        self, gateway: Gateway, finished: dict[str, Any], range_header: str, start: int,
        end: int,
    ) -> None:
        with _http(gateway, finished["token"]) as http:
            response = http.get(f"/videos/{finished['video'].id}/content",
                                headers={"Range": range_header})
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/300000"
        assert response.headers["content-length"] == str(end - start)
        assert response.headers["content-type"] == "video/mp4"
        assert response.content == finished["bytes"][start:end]

    def test_range_with_an_unknown_unit_is_ignored_and_the_whole_asset_served(
        self, gateway: Gateway, finished: dict[str, Any]
    ) -> None:
        # RFC 9110 14.2: a server MUST ignore a Range header with a unit it does not understand.
        with _http(gateway, finished["token"]) as http:
            response = http.get(f"/videos/{finished['video'].id}/content",
                                headers={"Range": "items=0-9"})
        assert response.status_code == 200
        assert "content-range" not in response.headers
        assert response.content == finished["bytes"]

    def test_malformed_range_is_ignored_or_refused_in_the_error_envelope(
        self, gateway: Gateway, finished: dict[str, Any]
    ) -> None:
        with _http(gateway, finished["token"]) as http:
            response = http.get(f"/videos/{finished['video'].id}/content",
                                headers={"Range": "bytes=abc"})
        if response.status_code == 200:
            assert response.content == finished["bytes"]
        else:
            assert response.status_code in (400, 416)
            assert response.headers["content-type"].startswith("application/json")
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert isinstance(error["code"], str)

    @pytest.mark.parametrize("range_header", ["bytes=300000-", "bytes=400000-400100"])
    def test_range_outside_the_asset_is_416(
        self, gateway: Gateway, finished: dict[str, Any], range_header: str
    ) -> None:
        with _http(gateway, finished["token"]) as http:
            response = http.get(f"/videos/{finished['video'].id}/content",
                                headers={"Range": range_header})
        assert response.status_code == 416
        assert response.headers.get("x-request-id")
        # RFC 9110 15.5.17: a 416 names the current length so the client can retry sensibly.
        assert response.headers.get("content-range") == "bytes */300000"

    def test_unknown_variant_is_400_with_param_variant(
        self, gateway: Gateway, finished: dict[str, Any], simulator: Simulator
    ) -> None:
        before = simulator.stats()["content_requests"]
        with _http(gateway, finished["token"]) as http:
            response = http.get(f"/videos/{finished['video'].id}/content",
                                params={"variant": "poster"})
        _assert_error_response(response, 400, "invalid_request_error", "invalid_value", "variant")
        assert simulator.stats()["content_requests"] == before

    def test_content_of_a_running_video_is_409_video_not_ready(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        client = gateway.client(token)
        video = client.videos.create(prompt=f"not yet {_tag()} [never]")
        with pytest.raises(openai.ConflictError) as caught:
            client.videos.download_content(video.id)
        _assert_api_error(caught.value, 409, "invalid_request_error", "video_not_ready")
        assert caught.value.response.headers["x-should-retry"] == "false"
        client.videos.delete(video.id)
        assert _money(gateway, token_id) == ("1.000000", "0.000000")
        assert _kinds(gateway, token_id) == ["topup", "hold", "refund"]
        gateway.assert_reconciles(token_id)


# -- streaming -----------------------------------------------------------------------------------
class TestStreaming:
    def test_64_mib_video_streams_through_with_flat_memory(
        self, dedicated: Dedicated, simulator: Simulator
    ) -> None:
        size = 64 * MIB
        gw = dedicated.gw
        assert gw.process is not None
        token_id, token = gw.create_token(group="restricted", balance_usd="2")
        client = gw.client(token)
        # Warm the content path (and any copy the gateway keeps) so the baseline includes it.
        small = _completed(client, f"warm up {_tag()} [size:{MIB}] [duration:0.2]")
        assert len(client.videos.download_content(small.id).content) == MIB

        with _RssSampler(gw.process.pid) as rss, _http(gw, token) as http:
            # Sampling covers completion too: whatever the gateway does with a finished video
            # (relay it, or copy it somewhere) must not hold it in memory.
            prompt = f"big one {_tag()} [size:{size}] [duration:0.2]"
            video = _completed(client, prompt)
            upstream_id = _upstream_id(simulator, prompt)
            digest = hashlib.sha256()
            received = 0
            started = time.monotonic()
            first_byte_at: float | None = None
            with http.stream("GET", f"/videos/{video.id}/content") as response:
                assert response.status_code == 200
                assert response.headers["content-length"] == str(size)
                assert response.headers["content-type"] == "video/mp4"
                for chunk in response.iter_raw():
                    if first_byte_at is None and chunk:
                        first_byte_at = time.monotonic()
                    digest.update(chunk)
                    received += len(chunk)
            total = time.monotonic() - started

        assert received == size
        assert first_byte_at is not None
        time_to_first_byte = first_byte_at - started
        assert time_to_first_byte < 0.25 * total, (time_to_first_byte, total)
        assert rss.growth < 32 * MIB, f"gateway RSS grew by {rss.growth / MIB:.1f} MiB"
        assert rss.samples > 10
        assert digest.hexdigest() == _sha256_of_simulated(upstream_id, size)
        assert _money(gw, token_id) == ("1.200000", "0.000000")
        assert _kinds(gw, token_id) == ["topup", "hold", "capture", "hold", "capture"]
        gw.assert_reconciles(token_id)

    def test_upstream_transfer_breaking_halfway_is_not_a_clean_success(
        self, gateway: Gateway, simulator: Simulator, finished: dict[str, Any]
    ) -> None:
        size = 2 * MIB
        token_id, token = gateway.create_token(balance_usd="1")
        client = gateway.client(token)
        prompt = f"breaks {_tag()} [content-break] [size:{size}] [duration:0.2]"
        video = _completed(client, prompt)
        expected = expected_content(_upstream_id(simulator, prompt), size)

        received = bytearray()
        declared: int | None = None
        broke = False
        with _http(gateway, token) as http:
            try:
                with http.stream("GET", f"/videos/{video.id}/content") as response:
                    assert response.status_code == 200
                    declared = int(response.headers["content-length"])
                    for chunk in response.iter_raw():
                        received.extend(chunk)
            except httpx.HTTPError:
                broke = True
        assert declared == size
        assert broke or len(received) < declared, "a broken transfer looked complete"
        assert len(received) < size
        assert bytes(received) == expected[: len(received)], "relayed bytes differ from upstream"

        # The gateway keeps serving: health, other downloads, the same token.
        assert httpx.get(f"{gateway.url}/healthz").status_code == 200
        other = finished["client"].videos.download_content(finished["video"].id)
        assert other.content == finished["bytes"]
        assert client.videos.retrieve(video.id).status == "completed"
        assert _money(gateway, token_id) == ("0.600000", "0.000000")
        gateway.assert_reconciles(token_id)


# -- the reseller (compat) dialect ---------------------------------------------------------------
class TestCompatFlavor:
    @pytest.mark.parametrize("url_directive", ["", "[url-field]"])
    def test_job_reaches_completed_and_content_streams_from_the_video_url(
        self, gateway: Gateway, compat_simulator: Simulator, url_directive: str
    ) -> None:
        size = 200000
        token_id, token = gateway.create_token(group="resale", balance_usd="2")
        client = gateway.client(token)
        prompt = f"compat {_tag()} {url_directive} [size:{size}] [duration:0.5]".replace("  ", " ")
        downloads_before = compat_simulator.stats()["content_requests"]
        video = client.videos.create(prompt=prompt)
        assert video.status in RUNNING
        _assert_held(gateway, token_id, video.id, "0.600000", "1.400000")
        upstream_id = _upstream_id(compat_simulator, prompt)

        seen: list[tuple[str, int]] = []
        with _http(gateway, token) as http:
            def poll() -> bool:
                body = http.get(f"/videos/{video.id}").json()
                seen.append((body["status"], body["progress"]))
                return bool(body["status"] == "completed")

            wait_for(poll, timeout=10, interval=0.05)
        assert {status for status, _ in seen} <= {"queued", "in_progress", "completed"}, seen
        assert all(0 <= progress <= 100 for _, progress in seen)
        assert seen[-1] == ("completed", 100)
        polled = client.videos.poll(video.id, poll_interval_ms=50)
        assert polled.status == "completed"

        content = client.videos.download_content(video.id)
        assert content.response.headers["content-type"] == "video/mp4"
        assert content.content == expected_content(upstream_id, size)
        # The compat upstream has no content route: the bytes can only come from its video_url.
        assert compat_simulator.stats()["content_requests"] > downloads_before
        assert _money(gateway, token_id) == ("1.400000", "0.000000")
        assert _kinds(gateway, token_id) == ["topup", "hold", "capture"]
        gateway.assert_reconciles(token_id)

    @pytest.mark.parametrize(("directives", "message"), [
        ("[fail]", "The video could not be generated."),
        ("[fail] [string-error]", "generation failed"),
    ])
    def test_failed_compat_job_has_an_error_object_and_is_refunded(
        self, gateway: Gateway, directives: str, message: str
    ) -> None:
        token_id, token = gateway.create_token(group="resale", balance_usd="2")
        client = gateway.client(token)
        video = client.videos.create(prompt=f"compat fail {_tag()} {directives} [duration:0.2]")
        _assert_held(gateway, token_id, video.id, "0.600000", "1.400000")

        failed = _settled(client, video.id)

        assert failed.status == "failed"
        with _http(gateway, token) as http:
            body = http.get(f"/videos/{video.id}").json()
        assert body["status"] == "failed"
        assert isinstance(body["error"], dict)
        assert set(body["error"]) == {"code", "message"}
        assert isinstance(body["error"]["code"], str)
        assert body["error"]["code"]
        assert body["error"]["message"] == message
        assert _money(gateway, token_id) == ("2.000000", "0.000000")
        assert _kinds(gateway, token_id) == ["topup", "hold", "refund"]
        gateway.assert_reconciles(token_id)

    def test_unknown_upstream_status_never_reaches_the_client(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        client = gateway.client(token)
        video = client.videos.create(prompt=f"odd {_tag()} [unknown-status] [duration:0.8]")
        seen: list[str] = [video.status]
        with _http(gateway, token) as http:
            def poll() -> bool:
                status = http.get(f"/videos/{video.id}").json()["status"]
                seen.append(status)
                return bool(status in TERMINAL)

            wait_for(poll, timeout=10, interval=0.05)
        assert "weird_state" not in seen
        assert set(seen[:-1]) <= RUNNING, seen
        assert seen[-1] == "completed"
        assert _kinds(gateway, token_id) == ["topup", "hold", "capture"]
        gateway.assert_reconciles(token_id)


# -- ownership -----------------------------------------------------------------------------------
class TestOwnershipIsolation:
    def test_another_tokens_video_is_not_found_everywhere(self, gateway: Gateway) -> None:
        owner_id, owner_token = gateway.create_token(balance_usd="2")
        other_id, other_token = gateway.create_token(balance_usd="2")
        owner, other = gateway.client(owner_token), gateway.client(other_token)
        video = _completed(owner, f"mine {_tag()} [duration:0.2]")

        attempts: list[Callable[[], object]] = [
            lambda: other.videos.retrieve(video.id),
            lambda: other.videos.download_content(video.id),
            lambda: other.videos.delete(video.id),
            lambda: other.videos.remix(video.id, prompt=f"stolen {_tag()}"),
        ]
        for attempt in attempts:
            with pytest.raises(openai.NotFoundError) as caught:
                attempt()
            _assert_api_error(caught.value, 404, "invalid_request_error", "not_found")
            assert caught.value.response.headers["x-should-retry"] == "false"

        assert owner.videos.retrieve(video.id).status == "completed"
        assert owner.videos.download_content(video.id).content[4:8] == b"ftyp"
        assert _money(gateway, other_id) == ("2.000000", "0.000000")
        assert _kinds(gateway, other_id) == ["topup"]
        assert _money(gateway, owner_id) == ("1.600000", "0.000000")
        assert _kinds(gateway, owner_id) == ["topup", "hold", "capture"]
        gateway.assert_reconciles(owner_id)
        gateway.assert_reconciles(other_id)

    def test_list_shows_only_the_callers_own_videos(self, gateway: Gateway) -> None:
        a_id, a_token = gateway.create_token(balance_usd="2")
        b_id, b_token = gateway.create_token(balance_usd="2")
        a, b = gateway.client(a_token), gateway.client(b_token)
        a_video = a.videos.create(prompt=f"a {_tag()} [duration:0.2]")
        b_video = b.videos.create(prompt=f"b {_tag()} [duration:0.2]")

        assert [v.id for v in a.videos.list()] == [a_video.id]
        assert [v.id for v in b.videos.list()] == [b_video.id]
        _settled(a, a_video.id)
        _settled(b, b_video.id)
        gateway.assert_reconciles(a_id)
        gateway.assert_reconciles(b_id)


# -- listing -------------------------------------------------------------------------------------
@pytest.fixture(scope="class")
def five_videos(gateway: Gateway) -> Iterator[dict[str, Any]]:
    token_id, token = gateway.create_token(balance_usd="5")
    client = gateway.client(token)
    ids = [client.videos.create(prompt=f"list {n} {_tag()} [duration:0.2]").id for n in range(5)]
    yield {"token_id": token_id, "token": token, "client": client, "ids": ids}
    client.close()


class TestListing:
    def test_auto_pagination_returns_every_video_once_newest_first(
        self, five_videos: dict[str, Any]
    ) -> None:
        client: OpenAI = five_videos["client"]
        ids: list[str] = five_videos["ids"]
        listed = [video.id for video in client.videos.list(limit=2)]
        assert listed == list(reversed(ids))
        pages = list(client.videos.list(limit=2).iter_pages())
        assert [len(page.data) for page in pages] == [2, 2, 1]
        assert [page.has_more for page in pages] == [True, True, False]

    def test_ascending_order_and_after_cursor(self, five_videos: dict[str, Any]) -> None:
        client: OpenAI = five_videos["client"]
        ids: list[str] = five_videos["ids"]
        assert [v.id for v in client.videos.list(order="asc", limit=100).data] == ids
        assert [v.id for v in client.videos.list(order="asc", after=ids[1]).data] == ids[2:]
        desc_after = client.videos.list(order="desc", after=ids[3], limit=2)
        assert [v.id for v in desc_after.data] == [ids[2], ids[1]]
        assert desc_after.has_more is True
        assert [v.id for v in client.videos.list(order="asc", limit=2, after=ids[2])] == ids[3:]

    def test_raw_envelope_has_every_openai_list_field(
        self, gateway: Gateway, five_videos: dict[str, Any]
    ) -> None:
        ids: list[str] = five_videos["ids"]
        with _http(gateway, five_videos["token"]) as http:
            response = http.get("/videos", params={"limit": 2})
            last = http.get("/videos", params={"limit": 2, "after": ids[1]})
        assert response.status_code == 200
        body = response.json()
        assert set(body) >= {"object", "data", "first_id", "last_id", "has_more"}
        assert body["object"] == "list"
        assert [video["id"] for video in body["data"]] == [ids[4], ids[3]]
        assert (body["first_id"], body["last_id"], body["has_more"]) == (ids[4], ids[3], True)
        for video in body["data"]:
            assert set(video) >= VIDEO_FIELDS
        tail = last.json()
        assert [video["id"] for video in tail["data"]] == [ids[0]]
        assert (tail["first_id"], tail["last_id"], tail["has_more"]) == (ids[0], ids[0], False)

    def test_empty_list_has_null_last_id_and_no_more(self, gateway: Gateway) -> None:
        _, token = gateway.create_token(balance_usd="1")
        with _http(gateway, token) as http:
            response = http.get("/videos")
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "list"
        assert body["data"] == []
        assert body["last_id"] is None
        assert body["first_id"] is None
        assert body["has_more"] is False
        assert list(gateway.client(token).videos.list()) == []

    @pytest.mark.parametrize("limit", [0, 1000, -1])
    def test_limit_out_of_range_is_400(self, gateway: Gateway, five_videos: dict[str, Any],
                                       limit: int) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            five_videos["client"].videos.list(limit=limit)
        _assert_api_error(caught.value, 400, "invalid_request_error", "invalid_value")
        assert caught.value.param == "limit"

    def test_bad_order_is_400(self, gateway: Gateway, five_videos: dict[str, Any]) -> None:
        with _http(gateway, five_videos["token"]) as http:
            response = http.get("/videos", params={"order": "sideways"})
        _assert_error_response(response, 400, "invalid_request_error", "invalid_value", "order")

    def test_deleted_videos_disappear_from_the_list(
        self, gateway: Gateway, five_videos: dict[str, Any]
    ) -> None:
        client: OpenAI = five_videos["client"]
        ids: list[str] = five_videos["ids"]
        for video_id in ids:
            _settled(client, video_id)
        assert client.videos.delete(ids[2]).deleted is True
        listed = [video.id for video in client.videos.list(limit=2)]
        assert listed == [ids[4], ids[3], ids[1], ids[0]]
        assert ids[2] not in [v.id for v in client.videos.list(order="asc", limit=100).data]
        token_id = five_videos["token_id"]
        assert _money(gateway, token_id) == ("3.000000", "0.000000")
        assert Counter(_kinds(gateway, token_id)) == {"topup": 1, "hold": 5, "capture": 5}
        gateway.assert_reconciles(token_id)


# -- deleting ------------------------------------------------------------------------------------
class TestDelete:
    def test_delete_answers_the_deletion_object_and_a_second_delete_is_404(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        client = gateway.client(token)
        prompt = f"delete me {_tag()} [duration:0.2]"
        video = _completed(client, prompt)
        upstream_id = _upstream_id(simulator, prompt)

        raw = client.videos.with_raw_response.delete(video.id)
        assert raw.status_code == 200
        assert json.loads(raw.text) == {"id": video.id, "object": "video.deleted",
                                        "deleted": True}
        parsed = raw.parse()
        assert (parsed.id, parsed.deleted) == (video.id, True)
        wait_for(lambda: upstream_id in simulator.stats()["deletes"], timeout=5)

        with pytest.raises(openai.NotFoundError) as again:
            client.videos.delete(video.id)
        _assert_api_error(again.value, 404, "invalid_request_error", "not_found")
        with pytest.raises(openai.NotFoundError) as gone:
            client.videos.retrieve(video.id)
        _assert_api_error(gone.value, 404, "invalid_request_error", "not_found")
        # A completed video's charge stands after deletion.
        assert _money(gateway, token_id) == ("0.600000", "0.000000")
        assert _kinds(gateway, token_id) == ["topup", "hold", "capture"]
        gateway.assert_reconciles(token_id)

    def test_deleting_a_running_video_refunds_it_and_cancels_upstream(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        client = gateway.client(token)
        prompt = f"cancel me {_tag()} [never]"
        video = client.videos.create(prompt=prompt)
        upstream_id = _upstream_id(simulator, prompt)
        assert _money(gateway, token_id) == ("0.600000", "0.400000")

        deleted = client.videos.delete(video.id)

        assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
        assert _money(gateway, token_id) == ("1.000000", "0.000000")
        assert _kinds(gateway, token_id) == ["topup", "hold", "refund"]
        assert simulator.job(upstream_id)["status"] == "deleted"
        with pytest.raises(openai.NotFoundError):
            client.videos.download_content(video.id)
        gateway.assert_reconciles(token_id)


# -- polling pace --------------------------------------------------------------------------------
class TestPollingLoad:
    def test_twenty_pollers_cause_few_serialized_upstream_retrieves(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="1")
        client = gateway.client(token)
        prompt = f"popular {_tag()} [never]"
        video = client.videos.create(prompt=prompt)
        upstream_id = _upstream_id(simulator, prompt)
        before = simulator.stats()["retrieves"].get(upstream_id, 0)
        duration = 2.0
        statuses: Counter[str] = Counter()
        lock = threading.Lock()
        errors: list[BaseException] = []

        def poller() -> None:
            own = gateway.client(token)
            deadline = time.monotonic() + duration
            try:
                while time.monotonic() < deadline:
                    status = own.videos.retrieve(video.id).status
                    with lock:
                        statuses[status] += 1
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=poller) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        assert set(statuses) <= RUNNING
        assert sum(statuses.values()) >= 100, statuses  # the gateway was really hammered
        stats = simulator.stats()
        upstream_calls = stats["retrieves"].get(upstream_id, 0) - before
        # One refresh per refresh_after_s (0.2 s) plus reconciler polls and slack.
        assert 1 <= upstream_calls <= 20, upstream_calls
        assert stats["max_concurrent_retrieves"][upstream_id] == 1
        client.videos.delete(video.id)
        assert _money(gateway, token_id) == ("1.000000", "0.000000")
        gateway.assert_reconciles(token_id)


# -- upstream selection --------------------------------------------------------------------------
class TestFailover:
    def test_unreachable_first_upstream_fails_over_at_create(self, dedicated: Dedicated) -> None:
        gw, flaky = dedicated.gw, dedicated.flaky
        token_id, token = gw.create_token(balance_usd="3")
        client = gw.client(token)

        prompts = [f"failover {n} {_tag()} [duration:0.2]" for n in range(3)]
        videos = [client.videos.create(prompt=prompt) for prompt in prompts]

        assert all(video.status in RUNNING for video in videos)
        upstream_ids = [_upstream_id(flaky, prompt) for prompt in prompts]
        assert _money(gw, token_id)[0] == "1.800000"
        assert "release" not in _kinds(gw, token_id)
        for video, upstream_id in zip(videos, upstream_ids, strict=True):
            assert _settled(client, video.id).status == "completed"
            content = client.videos.download_content(video.id)
            assert content.content == expected_content(upstream_id, 256 * 1024)
        assert _money(gw, token_id) == ("1.800000", "0.000000")
        assert Counter(_kinds(gw, token_id)) == {"topup": 1, "hold": 3, "capture": 3}
        gw.assert_reconciles(token_id)

    def test_upstream_answering_503_at_create_moves_the_job_to_the_next(
        self, dedicated: Dedicated, simulator: Simulator
    ) -> None:
        gw, flaky = dedicated.gw, dedicated.flaky
        token_id, token = gw.create_token(balance_usd="3")
        client = gw.client(token)
        creates_before = flaky.stats()["creates"]
        jobs_before = len(flaky.stats()["jobs"])
        flaky.faults(503, count=3)

        prompts = [f"flaky {n} {_tag()} [duration:0.2]" for n in range(3)]
        videos = [client.videos.create(prompt=prompt) for prompt in prompts]

        flaky_stats = flaky.stats()
        assert flaky_stats["creates"] - creates_before == 3
        assert len(flaky_stats["jobs"]) == jobs_before
        upstream_ids = [_upstream_id(simulator, prompt) for prompt in prompts]
        assert _money(gw, token_id)[0] == "1.800000"
        for video, upstream_id in zip(videos, upstream_ids, strict=True):
            assert _settled(client, video.id).status == "completed"
            content = client.videos.download_content(video.id)
            assert content.content == expected_content(upstream_id, 256 * 1024)
        # The faults are used up: the heavier upstream takes the next job itself.
        prompt = f"back {_tag()} [duration:0.2]"
        client.videos.create(prompt=prompt)
        _upstream_id(flaky, prompt)
        assert Counter(_kinds(gw, token_id))["hold"] == 4
        assert "release" not in _kinds(gw, token_id)
        gw.assert_reconciles(token_id)

    def test_api_keys_rotate_and_each_job_keeps_the_key_that_created_it(
        self, dedicated: Dedicated
    ) -> None:
        gw, sim, proxy, keys = dedicated.gw, dedicated.keyed, dedicated.proxy, dedicated.keys
        token_id, token = gw.create_token(group="budget", balance_usd="3")
        client = gw.client(token)

        prompts = [f"keys {n} {_tag()} [size:1000] [duration:0.2]" for n in range(4)]
        videos = [client.videos.create(prompt=prompt) for prompt in prompts]
        upstream_ids = [_upstream_id(sim, prompt) for prompt in prompts]
        create_keys = [sim.job(uid)["key"] for uid in upstream_ids]
        assert Counter(create_keys) == {keys[0]: 2, keys[1]: 2}, create_keys

        for video, upstream_id in zip(videos, upstream_ids, strict=True):
            assert _settled(client, video.id).status == "completed"
            assert client.videos.download_content(video.id).content == (
                expected_content(upstream_id, 1000))
            client.videos.download_content(video.id, variant="thumbnail")
        remix = client.videos.remix(videos[1].id, prompt=f"keyed remix {_tag()} [duration:0.2]")
        assert _settled(client, remix.id).status == "completed"

        for upstream_id, key in zip(upstream_ids, create_keys, strict=True):
            later = proxy.keys_for(upstream_id)
            paths = {path for _, path, _ in later}
            assert f"/v1/videos/{upstream_id}" in paths
            assert f"/v1/videos/{upstream_id}/content" in paths
            assert {used for _, _, used in later} == {key}, later
        remix_calls = [r for r in proxy.requests if r[1] == f"/v1/videos/{upstream_ids[1]}/remix"]
        assert [used for _, _, used in remix_calls] == [create_keys[1]]
        assert _money(gw, token_id) == ("1.000000", "0.000000")
        gw.assert_reconciles(token_id)
