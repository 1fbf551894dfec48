"""Chat completions over video jobs, and /v1/models, through the openai SDK against a real
gateway and the provider simulator: the answer, the money, hang-ups, and the upstream load."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.simulator import expected_content, playable_content
from tests.conftest import wait_for
from tests.support.browser import chromium
from tests.support.chat import (
    ALIASES,
    data_events,
    link_in,
    raw_stream_lines,
    stream_chat,
    user,
)
from tests.support.checks import assert_invalid
from tests.support.media import data_url, image_bytes
from tests.support.servers import Gateway, Simulator, base_config, upstream

SIZE = 60_000
WAIT_S = 4.0
KEEPALIVE_S = 0.5
PRICE = "0.400000"  # sora_video2: sora-2, 720x1280, 4 s at USD 0.10/s


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator) -> Iterator[Gateway]:
    config = base_config(
        [upstream("primary", simulator, ["official", "budget", "restricted"])],
        chat={"aliases": ALIASES, "wait_s": WAIT_S, "progress_every_s": 0.5,
              "keepalive_s": KEEPALIVE_S},
        metrics={"loop_lag_interval_s": 0.01})
    gateway = Gateway(tmp_path_factory.mktemp("chat"), config).start()
    yield gateway
    gateway.stop()


def _prompt(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:10]}"


def _kinds(gw: Gateway, token_id: str) -> list[str]:
    return sorted(entry["kind"] for entry in gw.ledger(token_id) if entry["kind"] != "topup")


def _metric(gw: Gateway, name: str) -> float:
    line = next(line for line in gw.metrics().splitlines() if line.startswith(f"{name} "))
    return float(line.split()[1])


def _watched(gw: Gateway) -> float:
    return _metric(gw, "gateway_watched_jobs")


class TestStreamed:
    def test_the_answer_streams_progress_then_a_link_to_the_video(
            self, gw: Gateway, simulator: Simulator) -> None:
        token_id, token = gw.create_token()
        prompt = _prompt(f"a red kite [duration:1.5] [size:{SIZE}]")
        answer = stream_chat(gw.client(token), "sora_video2", prompt)
        first, last = answer.chunks[0], answer.chunks[-1]
        assert first.object == "chat.completion.chunk"
        assert first.choices[0].delta.role == "assistant"
        assert {chunk.id for chunk in answer.chunks} == {first.id}
        assert {chunk.model for chunk in answer.chunks} == {"sora_video2"}
        assert last.choices[0].finish_reason == "stop"
        assert "Queued…" in answer.text or "Progress: " in answer.text
        video_id = answer.headers["x-video-id"]
        assert answer.headers["x-video-price-usd"] == PRICE
        assert f"`{video_id}`" in answer.text
        upstream_id, job = simulator.job_for(prompt)
        assert (job["size"], job["seconds"]) == ("720x1280", "4")
        download = httpx.get(link_in(answer.text), timeout=30)  # no token
        assert download.status_code == 200, download.text
        assert download.content == expected_content(upstream_id, SIZE)
        assert download.headers["content-type"] == "video/mp4"
        # An ordinary job: the caller's list has it, the hold was captured.
        assert gw.client(token).videos.retrieve(video_id).status == "completed"
        assert _kinds(gw, token_id) == ["capture", "hold"]
        state = gw.token(token_id)
        assert (state["balance_usd"], state["held_usd"]) == ("9.600000", "0.000000")
        gw.assert_reconciles(token_id)

    def test_a_failed_video_ends_the_stream_saying_it_was_refunded(self, gw: Gateway) -> None:
        token_id, token = gw.create_token()
        answer = stream_chat(gw.client(token), "sora_video2",
                             _prompt("doomed [fail] [duration:0.5]"))
        assert answer.finish_reason == "stop"
        assert "failed" in answer.text, answer.text
        assert "refunded" in answer.text
        assert f"USD {PRICE}" in answer.text
        assert "](" not in answer.text  # no link to a video that does not exist
        assert _kinds(gw, token_id) == ["hold", "refund"]
        assert gw.token(token_id)["balance_usd"] == "10.000000"
        gw.assert_reconciles(token_id)

    def test_a_reference_image_of_the_alias_size_reaches_the_upstream(
            self, gw: Gateway, simulator: Simulator) -> None:
        _, token = gw.create_token()
        prompt = _prompt("from this frame [duration:0.3]")
        content = [{"type": "text", "text": prompt},
                   {"type": "image_url",
                    "image_url": {"url": data_url(image_bytes(1280, 720))}}]
        answer = gw.client(token).chat.completions.create(
            model="sora_video2-landscape", messages=[{"role": "user", "content": content}])
        assert "Your video is ready" in (answer.choices[0].message.content or "")
        _, job = simulator.job_for(prompt)
        assert job["has_input_reference"]
        assert job["size"] == "1280x720"

    def test_keep_alive_comments_fill_a_quiet_job(self, gw: Gateway) -> None:
        _, token = gw.create_token()
        lines = raw_stream_lines(gw.url, token, {
            "model": "sora_video2", "messages": user(_prompt("still [duration:2] [progress:10]")),
            "stream_options": {"include_usage": True}})
        assert lines.count(": keep-alive") >= 2, lines
        events = data_events(lines)
        assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert events[-2]["choices"][0]["finish_reason"] == "stop"
        assert events[-1]["choices"] == []
        assert events[-1]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0,
                                       "total_tokens": 0}
        assert [line for line in lines if line][-1] == "data: [DONE]"

    def test_a_client_that_hangs_up_loses_nothing(self, gw: Gateway) -> None:
        token_id, token = gw.create_token()
        client = gw.client(token)
        prompt, key = _prompt("walk away [duration:2]"), str(uuid.uuid4())
        stream = client.chat.completions.create(
            model="sora_video2", messages=user(prompt), stream=True,
            extra_headers={"Idempotency-Key": key})
        video_id = stream.response.headers["x-video-id"]
        next(iter(stream))
        stream.close()
        wait_for(lambda: _watched(gw) == 0, timeout=10)  # the waiter was stopped
        wait_for(lambda: client.videos.retrieve(video_id).status == "completed", timeout=20)
        wait_for(lambda: _kinds(gw, token_id) == ["capture", "hold"], timeout=10)
        # Asked again with the same key, the answer is the same job's link.
        again = client.chat.completions.create(model="sora_video2", messages=user(prompt),
                                               extra_headers={"Idempotency-Key": key})
        assert httpx.get(link_in(again.choices[0].message.content or ""),
                         timeout=30).status_code == 200
        assert _kinds(gw, token_id) == ["capture", "hold"]
        gw.assert_reconciles(token_id)


class TestLoopLag:
    def test_the_ticker_counts_its_ticks_and_keeps_the_longest_lag(self, gw: Gateway) -> None:
        """This gateway sets metrics.loop_lag_interval_s: a stream waiting on a job shares
        the event loop with everything else, and the ticker says how late the loop ran."""
        def ticks() -> float:
            return _metric(gw, "gateway_event_loop_lag_seconds_count")

        before = ticks()
        wait_for(lambda: ticks() >= before + 20, timeout=10)
        assert _metric(gw, "gateway_event_loop_lag_max_seconds") > 0


class TestWhole:
    def test_the_answer_is_one_completion_with_the_link_and_the_price(self, gw: Gateway) -> None:
        token_id, token = gw.create_token()
        raw = gw.client(token).chat.completions.with_raw_response.create(
            model="sora_video2", messages=user(_prompt("a calm lake [duration:0.5]")))
        assert raw.headers["x-video-price-usd"] == PRICE
        answer = raw.parse()
        assert answer.object == "chat.completion"
        assert answer.choices[0].finish_reason == "stop"
        assert answer.choices[0].message.role == "assistant"
        assert answer.usage is not None
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens,
                answer.usage.total_tokens) == (0, 0, 0)
        text = answer.choices[0].message.content or ""
        assert httpx.get(link_in(text), timeout=30).status_code == 200
        assert _kinds(gw, token_id) == ["capture", "hold"]

    def test_a_long_job_is_answered_with_its_id_after_wait_s(self, gw: Gateway) -> None:
        token_id, token = gw.create_token()
        client = gw.client(token)
        started = time.monotonic()
        answer = client.chat.completions.create(
            model="sora_video2", messages=user(_prompt("an epic [duration:60]")))
        assert WAIT_S - 0.5 <= time.monotonic() - started <= WAIT_S + 5
        text = answer.choices[0].message.content or ""
        video_id = next(word.strip("`.") for word in text.split() if word.startswith("`video_"))
        assert "still" in text, text
        assert f"GET /v1/videos/{video_id}" in text
        assert client.videos.retrieve(video_id).status in ("queued", "in_progress")
        assert Decimal(gw.token(token_id)["held_usd"]) == Decimal(PRICE)
        client.videos.delete(video_id)
        assert _kinds(gw, token_id) == ["hold", "refund"]


    def test_a_client_that_gives_up_waiting_stops_its_waiter(self, gw: Gateway) -> None:
        token_id, token = gw.create_token()
        key = str(uuid.uuid4())
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{gw.url}/v1/chat/completions", timeout=1,
                       json={"model": "sora_video2", "messages": user(_prompt("[duration:60]"))},
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
        wait_for(lambda: _watched(gw) == 0, timeout=WAIT_S - 1.5)  # well before wait_s
        video_id = gw.client(token).videos.list().data[0].id
        assert gw.client(token).videos.retrieve(video_id).status in ("queued", "in_progress")
        gw.client(token).videos.delete(video_id)
        assert _kinds(gw, token_id) == ["hold", "refund"]


class TestRefused:
    @pytest.mark.parametrize(("body", "param"), [
        ({"messages": [{"role": "system", "content": "be brief"}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "  "}]}]},
         "messages"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"model": "gpt-4o-mini"}, "model"),
        ({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "wrong frame"},
            {"type": "image_url", "image_url": {"url": data_url(image_bytes(100, 100))}}]}]},
         "messages"),
    ])
    def test_bad_requests_are_400_and_hold_nothing(self, gw: Gateway, body: dict[str, Any],
                                                   param: str) -> None:
        token_id, token = gw.create_token()
        request = {"model": "sora_video2", "messages": user("a cat"), **body}
        for stream in (False, True):
            response = httpx.post(f"{gw.url}/v1/chat/completions",
                                  json={**request, "stream": stream}, timeout=30,
                                  headers={"Authorization": f"Bearer {token}"})
            assert_invalid(response, param)
        assert _kinds(gw, token_id) == []
        assert gw.token(token_id)["balance_usd"] == "10.000000"

    def test_an_unknown_alias_is_model_not_found(self, gw: Gateway) -> None:
        token_id, token = gw.create_token()
        with pytest.raises(openai.NotFoundError) as raised:
            gw.client(token).chat.completions.create(model="sora_video9", messages=user("x"))
        assert raised.value.code == "model_not_found"
        assert _kinds(gw, token_id) == []

    def test_an_alias_of_a_model_the_token_may_not_use_is_403(self, gw: Gateway) -> None:
        token_id, token = gw.create_token(group="restricted")
        with pytest.raises(openai.PermissionDeniedError):
            gw.client(token).chat.completions.create(model="sora_video2-pro",
                                                     messages=user("x"))
        assert _kinds(gw, token_id) == []


class TestModels:
    def test_each_token_sees_exactly_what_it_may_use(self, gw: Gateway) -> None:
        _, official = gw.create_token()
        _, restricted = gw.create_token(group="restricted")
        _, nobody = gw.create_token(group="nobody")
        _, listed = gw.create_token(models=["sora-2-pro"])
        seen = {name: sorted(model.id for model in gw.client(token).models.list())
                for name, token in (("official", official), ("restricted", restricted),
                                    ("nobody", nobody), ("listed", listed))}
        assert seen == {
            "official": sorted(["sora-2", "sora-2-pro", *ALIASES]),
            "restricted": ["sora-2", "sora_video2", "sora_video2-landscape"],
            "nobody": [],  # no upstream serves its group
            "listed": ["sora-2-pro", "sora_video2-pro"],
        }
        card = gw.client(restricted).models.retrieve("sora_video2")
        assert (card.id, card.object, card.owned_by) == ("sora_video2", "model", "video-gateway")

    def test_a_model_the_token_may_not_use_is_not_found(self, gw: Gateway) -> None:
        _, restricted = gw.create_token(group="restricted")
        for name in ("sora_video2-pro", "gpt-4o"):
            with pytest.raises(openai.NotFoundError) as raised:
                gw.client(restricted).models.retrieve(name)
            assert raised.value.code == "model_not_found"

    def test_models_need_a_token(self, gw: Gateway) -> None:
        assert httpx.get(f"{gw.url}/v1/models", timeout=10).status_code == 401


def _retrieves_of(simulator: Simulator, prompt: str) -> int:
    upstream_id, _ = simulator.job_for(prompt)
    return int(simulator.stats()["retrieves"].get(upstream_id, 0))


def _streams(gw: Gateway, simulator: Simulator, token: str, prompt: str,
             count: int) -> list[str]:
    """``count`` concurrent streams of one job (one Idempotency-Key): their final texts."""
    key, texts = str(uuid.uuid4()), [""] * count

    def one(index: int) -> None:
        texts[index] = stream_chat(gw.client(token), "sora_video2", prompt,
                                   extra_headers={"Idempotency-Key": key}).text

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    threads[0].start()
    # The others repeat the first's key once its job is with the upstream.
    wait_for(lambda: any(prompt in str(job.get("prompt"))
                         for job in simulator.stats()["jobs"].values()), timeout=10)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return texts


def test_upstream_polls_do_not_grow_with_the_number_of_waiters(
        gw: Gateway, simulator: Simulator) -> None:
    token_id, token = gw.create_token()
    alone = _prompt("alone [duration:3]")
    assert "ready" in _streams(gw, simulator, token, alone, 1)[0]
    crowd = _prompt("crowd [duration:3]")
    texts = _streams(gw, simulator, token, crowd, 20)
    assert all("Your video is ready" in text for text in texts), texts
    assert len({link_in(text).split("?")[0] for text in texts}) == 1  # one video
    one, twenty = _retrieves_of(simulator, alone), _retrieves_of(simulator, crowd)
    assert twenty <= one + 4, (one, twenty)
    assert _kinds(gw, token_id) == ["capture", "capture", "hold", "hold"]
    assert _watched(gw) == 0


def test_the_signed_link_plays_in_a_browser_video_element(gw: Gateway,
                                                          tmp_path: Path) -> None:
    _, token = gw.create_token()
    answer = gw.client(token).chat.completions.create(
        model="sora_video2", messages=user(_prompt("playable [playable] [duration:0.3]")))
    link = link_in(answer.choices[0].message.content or "")
    assert httpx.get(link, timeout=30).content == playable_content()
    with chromium() as browser:
        page = browser.new_page()
        page.set_content(f'<video id="v" muted preload="auto" src="{link}"></video>')
        page.wait_for_function("() => { const v = document.getElementById('v');"
                               " return v.readyState >= 1 || v.error !== null; }",
                               timeout=15_000)
        state = page.evaluate("() => { const v = document.getElementById('v');"
                              " return {ready: v.readyState, error: v.error && v.error.code,"
                              " width: v.videoWidth, duration: v.duration}; }")
        page.close()
    assert state["error"] is None, state
    assert state["ready"] >= 1, state
    assert state["width"] == 64
    assert state["duration"] > 0.5
