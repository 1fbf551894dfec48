"""Idempotency-Key that is safe to retry: a key is bound to the request it first came with.

Through the real SDK (and raw HTTP where headers matter): a create that never reached an
upstream gives its key back, so its retry makes the video and is charged once; the same key
with another body or on another route is 409 ``idempotency_key_reused`` and holds nothing; a
repeat while the first is still being submitted is 409 ``idempotency_key_in_use`` with
``Retry-After``. The fingerprint itself is a pure function and gets plain unit tests.
"""

from __future__ import annotations

import io
import threading
import uuid
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from gateway.videos.idempotency import file_digest, fingerprint, metadata_value
from tests.conftest import wait_for
from tests.support.servers import Gateway, Simulator, upstream

ZERO = "0.000000"


def tag() -> str:
    return uuid.uuid4().hex[:12]


def idem(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def kinds(gw: Gateway, token_id: str) -> list[str]:
    return [entry["kind"] for entry in gw.ledger(token_id)]


def money(gw: Gateway, token_id: str) -> tuple[str, str]:
    state = gw.token(token_id)
    return state["balance_usd"], state["held_usd"]


def upstream_ids(sim: Simulator, prompt: str) -> list[str]:
    return [job_id for job_id, job in sim.stats()["jobs"].items() if job["prompt"] == prompt]


def http(gw: Gateway, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{gw.url}/v1", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)


def assert_conflict(response: httpx.Response, code: str, *, should_retry: str) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code,
                                                              None), error
    assert response.headers["x-should-retry"] == should_retry


def completed(client: OpenAI, prompt: str, **fields: Any) -> str:
    video = client.videos.create_and_poll(prompt=prompt, poll_interval_ms=100, **fields)
    assert video.status == "completed"
    return video.id


class TestRetryAfterNothingReachedAnUpstream:
    def test_the_sdks_retry_of_a_502_with_its_key_makes_the_video_and_charges_once(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client = gateway.client(token, max_retries=2)  # the SDK retries a 502 on its own
        prompt, key = f"idem after 502 {tag()} [never]", tag()
        simulator.faults(503, count=1)

        video = client.videos.create(prompt=prompt, extra_headers=idem(key))

        assert video.status in ("queued", "in_progress")
        made = upstream_ids(simulator, prompt)
        assert len(made) == 1
        assert kinds(gateway, token_id) == ["topup", "hold", "release", "hold"]
        assert money(gateway, token_id) == ("1.600000", "0.400000")
        simulator.finish(made[0], "completed")
        assert client.videos.poll(video.id, poll_interval_ms=100).status == "completed"
        # The key now names the job that was made: a repeat gets it, and no second charge.
        again = client.videos.create(prompt=prompt, extra_headers=idem(key))
        assert again.id == video.id
        assert money(gateway, token_id) == ("1.600000", ZERO)
        assert kinds(gateway, token_id) == ["topup", "hold", "release", "hold", "capture"]
        gateway.assert_reconciles(token_id)

    def test_a_create_the_upstream_may_have_started_keeps_its_key(
        self, make_gateway: Any, simulator: Simulator
    ) -> None:
        gw = make_gateway([upstream("primary", simulator, ["official"], timeout_s=1)])
        token_id, token = gw.create_token(balance_usd="2")
        client = gw.client(token)
        prompt, key = f"idem unknown {tag()} [hang:2] [never]", tag()

        with pytest.raises(openai.InternalServerError) as unknown:
            client.videos.create(prompt=prompt, extra_headers=idem(key))
        assert unknown.value.response.headers["x-should-retry"] == "false"
        wait_for(lambda: upstream_ids(simulator, prompt), timeout=5)
        # A repeat must not start a second job: it gets the first, failed and charged nothing.
        repeat = client.videos.create(prompt=prompt, extra_headers=idem(key))

        assert repeat.status == "failed"
        assert len(upstream_ids(simulator, prompt)) == 1
        assert kinds(gw, token_id) == ["topup", "hold", "release"]
        gw.assert_reconciles(token_id)


class TestKeyBoundToItsRequest:
    @pytest.mark.parametrize("change", [{"prompt": "another prompt"}, {"seconds": "8"},
                                        {"size": "1280x720"}, {"model": "sora-2-pro"},
                                        {"metadata": '{"seed": 2}'}],
                             ids=["prompt", "seconds", "size", "model", "metadata"])
    def test_same_key_with_another_body_is_409_reused_and_holds_nothing(
        self, gateway: Gateway, simulator: Simulator, change: dict[str, str]
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="10")
        key = tag()
        first = {"prompt": f"idem body {tag()} [never]", "metadata": '{"seed": 1}'}
        with http(gateway, token) as client:
            created = client.post("/videos", json=first, headers=idem(key))
            assert created.status_code == 200, created.text

            reused = client.post("/videos", json={**first, **change}, headers=idem(key))

        assert_conflict(reused, "idempotency_key_reused", should_retry="false")
        assert kinds(gateway, token_id) == ["topup", "hold"]
        assert len(upstream_ids(simulator, first["prompt"])) == 1
        gateway.client(token).videos.delete(created.json()["id"])
        gateway.assert_reconciles(token_id)

    def test_metadata_that_differs_only_in_spacing_is_the_same_request(
        self, gateway: Gateway
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        client, key = gateway.client(token), tag()
        prompt = f"idem spacing {tag()} [never]"

        first = client.videos.create(prompt=prompt, extra_headers=idem(key),
                                     extra_body={"metadata": '{"a": 1, "b": 2}'})
        second = client.videos.create(prompt=prompt, extra_headers=idem(key),
                                      extra_body={"metadata": '{"b":2,"a":1}'})

        assert second.id == first.id
        assert kinds(gateway, token_id) == ["topup", "hold"]
        client.videos.delete(first.id)
        gateway.assert_reconciles(token_id)

    def test_a_create_key_sent_to_remix_and_a_remix_key_sent_to_create_are_409(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="10")
        client = gateway.client(token)
        prompt, create_key, remix_key = f"idem route {tag()} [duration:0.3]", tag(), tag()
        source = completed(client, prompt, extra_headers=idem(create_key))
        remix_prompt = f"idem remix {tag()} [never]"
        remix = client.videos.remix(source, prompt=remix_prompt, extra_headers=idem(remix_key))
        before = kinds(gateway, token_id)

        with pytest.raises(openai.ConflictError) as on_remix:
            client.videos.remix(source, prompt=prompt, extra_headers=idem(create_key))
        with pytest.raises(openai.ConflictError) as on_create:
            client.videos.create(prompt=remix_prompt, extra_headers=idem(remix_key))

        for refused in (on_remix.value, on_create.value):
            assert_conflict(refused.response, "idempotency_key_reused", should_retry="false")
        assert kinds(gateway, token_id) == before == ["topup", "hold", "capture", "hold"]
        assert len(upstream_ids(simulator, remix_prompt)) == 1
        client.videos.delete(remix.id)
        gateway.assert_reconciles(token_id)

    def test_an_edit_key_sent_as_the_same_extension_is_409(self, gateway: Gateway) -> None:
        token_id, token = gateway.create_token(balance_usd="10")
        source = completed(gateway.client(token), f"idem derive {tag()} [duration:0.3]")
        key = tag()
        # An edit inherits the source's 4 seconds, so only the route tells these two apart.
        body = {"prompt": f"derived {tag()} [never]", "video": {"id": source}, "seconds": "4"}
        with http(gateway, token) as client:
            edit = client.post("/videos/edits", json=body, headers=idem(key))
            assert edit.status_code == 200, edit.text
            assert client.post("/videos/edits", json=body,
                               headers=idem(key)).json()["id"] == edit.json()["id"]

            extension = client.post("/videos/extensions", json=body, headers=idem(key))

        assert_conflict(extension, "idempotency_key_reused", should_retry="false")
        assert kinds(gateway, token_id) == ["topup", "hold", "capture", "hold"]
        gateway.client(token).videos.delete(edit.json()["id"])
        gateway.assert_reconciles(token_id)


class TestKeyInFlight:
    def test_a_repeat_while_the_first_is_submitting_is_409_in_use_then_gets_the_first(
        self, gateway: Gateway, simulator: Simulator
    ) -> None:
        token_id, token = gateway.create_token(balance_usd="2")
        prompt, key = f"idem in flight {tag()} [never] [hang:1.5]", tag()
        created: list[httpx.Response] = []
        creates_before = simulator.stats()["creates"]

        def first() -> None:
            with http(gateway, token) as client:
                created.append(client.post("/videos", json={"prompt": prompt},
                                           headers=idem(key)))

        slow = threading.Thread(target=first)
        slow.start()
        wait_for(lambda: simulator.stats()["creates"] > creates_before, timeout=5, interval=0.02)
        with http(gateway, token) as client:
            in_use = client.post("/videos", json={"prompt": prompt}, headers=idem(key))
            slow.join()
            after = client.post("/videos", json={"prompt": prompt}, headers=idem(key))

        # x-should-retry true: once the first is submitted, this same request gets its job.
        assert_conflict(in_use, "idempotency_key_in_use", should_retry="true")
        assert in_use.headers["retry-after"] == "1"
        assert created[0].status_code == 200, created[0].text
        assert after.status_code == 200, after.text
        assert after.json()["id"] == created[0].json()["id"]
        assert kinds(gateway, token_id) == ["topup", "hold"]
        assert len(upstream_ids(simulator, prompt)) == 1
        gateway.client(token).videos.delete(after.json()["id"])
        gateway.assert_reconciles(token_id)


class TestFingerprint:
    def test_route_and_every_parameter_count(self) -> None:
        base = {"model": "sora-2", "size": "720x1280", "seconds": 4, "prompt": "a"}
        first = fingerprint("create", **base)
        assert fingerprint("create", **base) == first
        assert fingerprint("remix", **base) != first
        for name, value in (("model", "sora-2-pro"), ("size", "1280x720"), ("seconds", 8),
                            ("prompt", "b")):
            assert fingerprint("create", **{**base, name: value}) != first

    def test_metadata_is_compared_as_the_object_it_encodes(self) -> None:
        assert metadata_value('{"a": 1, "b": [1, 2]}') == metadata_value('{"b":[1,2],"a":1}')
        assert fingerprint("create", metadata=metadata_value('{"a": 1}')) == fingerprint(
            "create", metadata=metadata_value('{ "a" : 1 }'))
        assert metadata_value(None) is None

    def test_an_uploaded_file_counts_by_its_bytes_and_is_left_rewound(self) -> None:
        upload = io.BytesIO(b"x" * 3_000_000)
        upload.seek(1234)
        assert file_digest(upload) == file_digest(io.BytesIO(b"x" * 3_000_000))
        assert upload.tell() == 0
        assert file_digest(io.BytesIO(b"y")) != file_digest(io.BytesIO(b"z"))
