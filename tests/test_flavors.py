"""Each native flavor driven as the service drives it, against its vendor's simulator process:
create, poll, download, cancel, and what reaches the vendor on the wire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.simulator import SECRET_DETAIL, expected_content
from gateway.simulators import VENDOR_FLAVORS
from gateway.upstreams.base import UpstreamRefused, UpstreamUnavailable
from gateway.upstreams.flavor import CreateRequest, Flavor, Image, Submitted
from gateway.upstreams.outcome import Completed, Failed, PollOutcome, Running, Unreachable
from gateway.upstreams.sanitize import CODES
from tests.support.flavors import (
    PNG,
    asset_url,
    create_request,
    fetch,
    run,
    sent_body,
    settled,
    vendor_key,
)
from tests.support.leaks import assert_hidden, upstream_traces
from tests.support.servers import Simulator
from tests.support.vendors import KLING_AK, SIZE, png_base64

# The duration and size each vendor received for its case, in its own words and places.
SENT: dict[str, tuple[tuple[str, ...], dict[str, object]]] = {
    "ark": ((), {"duration": 5, "resolution": "720p", "ratio": "16:9", "generate_audio": False}),
    "dashscope": (("parameters",), {"duration": 5, "size": "1280*720", "audio": False}),
    "kling": ((), {"duration": "5", "mode": "std", "aspect_ratio": "16:9", "sound": "off"}),
    "gemini": (("parameters",), {"durationSeconds": 8, "aspectRatio": "16:9",
                                 "resolution": "720p"}),
    "minimax": ((), {"duration": 6, "resolution": "768P"}),
    "vidu": ((), {"duration": 5, "resolution": "720p", "aspect_ratio": "16:9", "audio": False}),
}
WITH_CANCEL = ("ark", "dashscope", "vidu")
WITH_STATUS_WORDS = ("ark", "dashscope", "kling", "minimax", "vidu")
REPORTS_SECONDS = ("ark", "dashscope", "kling", "vidu")


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Simulator]]:
    """One simulator process per vendor for the module, each accepting one key."""
    started = {flavor: Simulator(flavor=flavor, duration_s=0.5, api_key=vendor_key(flavor))
               for flavor in VENDOR_FLAVORS}
    try:
        for sim in started.values():
            sim.spawn()
        for sim in started.values():
            sim.ready()
        yield started
    finally:
        for sim in started.values():
            sim.stop()


@pytest.fixture(params=VENDOR_FLAVORS)
def sim(request: pytest.FixtureRequest, sims: dict[str, Simulator]) -> Simulator:
    return sims[request.param]



class TestEveryFlavor:
    @pytest.mark.parametrize("image", [False, True], ids=["text", "image"])
    def test_create_poll_download_and_range(self, sim: Simulator, image: bool) -> None:
        key = vendor_key(sim.flavor)

        async def scenario(flavor: Flavor) -> Submitted:
            job = await flavor.create(create_request(sim.flavor, "a fox", image=image), key)
            assert isinstance(await flavor.poll(job.upstream_id, job.poll_state, key), Running)
            url = asset_url(await settled(flavor, job, key))
            whole = expected_content(job.upstream_id, SIZE)
            assert await fetch(flavor, job, key, url) == (200, None, whole)
            ranged = await fetch(flavor, job, key, url, range_header="bytes=100-199")
            assert ranged == (206, f"bytes 100-199/{SIZE}", whole[100:200])
            return job

        job = run(sim, scenario)
        received = sim.job(job.upstream_id)
        assert received["has_input_reference"] is image
        if image:
            assert received["input_reference"]["bytes"] == len(PNG)

    def test_duration_and_size_are_always_sent(self, sim: Simulator) -> None:
        key = vendor_key(sim.flavor)
        job = run(sim, lambda flavor: flavor.create(create_request(sim.flavor, "x"), key))
        path, expected = SENT[sim.flavor]
        received: Any = sent_body(sim, job)
        for step in path:
            received = received[step]
        assert {name: received.get(name) for name in expected} == expected

    def test_metadata_is_merged_but_never_over_a_priced_field(self, sim: Simulator) -> None:
        key = vendor_key(sim.flavor)

        async def scenario(flavor: Flavor) -> Submitted:
            bogus: dict[str, object] = {name: "bogus" for name in flavor.priced_fields}
            bogus |= {"seconds": "bogus", "size": "bogus", "n": "bogus", "seed": 42}
            request = create_request(sim.flavor, "x", metadata=bogus)
            return await flavor.create(request, key)

        job = run(sim, scenario)
        received = json.dumps(sent_body(sim, job))
        assert '"seed": 42' in received
        assert "bogus" not in received

    def test_vendor_failure_is_failed_in_public_words(self, sim: Simulator) -> None:
        key = vendor_key(sim.flavor)

        async def scenario(flavor: Flavor) -> tuple[Submitted, PollOutcome]:
            job = await flavor.create(create_request(sim.flavor, "doomed [fail]"), key)
            return job, await settled(flavor, job, key)

        job, failed = run(sim, scenario)
        assert isinstance(failed, Failed), failed
        assert failed.code in CODES
        assert failed.message
        assert failed.raw
        assert_hidden(failed.message, upstream_traces(sim, upstream_id=job.upstream_id, key=key))

    def test_moderation_refusal_at_create(self, sim: Simulator) -> None:
        key = vendor_key(sim.flavor)
        with pytest.raises(UpstreamRefused) as refused:
            run(sim, lambda flavor: flavor.create(create_request(sim.flavor, "x [reject]"), key))
        assert refused.value.code == "moderation_blocked"
        assert_hidden(refused.value.message, upstream_traces(sim, key=key))

    def test_vendor_fault_at_create_is_unavailable(self, sim: Simulator) -> None:
        key = vendor_key(sim.flavor)
        sim.faults(429, count=1)
        with pytest.raises(UpstreamUnavailable) as unavailable:
            run(sim, lambda flavor: flavor.create(create_request(sim.flavor, "x"), key))
        assert SECRET_DETAIL not in str(unavailable.value)

    def test_polls_that_learn_nothing_are_unreachable(self, sim: Simulator) -> None:
        key = vendor_key(sim.flavor)
        missing = "models/veo-3.1/operations/nope" if sim.flavor == "gemini" else "404404404"

        async def scenario(flavor: Flavor) -> tuple[PollOutcome, PollOutcome]:
            job = await flavor.create(create_request(sim.flavor, "x [poll-status:503]"), key)
            failing = await flavor.poll(job.upstream_id, job.poll_state, key)
            return failing, await flavor.poll(missing, job.poll_state, key)

        failing, unknown = run(sim, scenario)
        assert isinstance(failing, Unreachable)
        assert isinstance(unknown, Unreachable)

    def test_cancel_reaches_the_vendor_that_has_one(self, sim: Simulator) -> None:
        key = vendor_key(sim.flavor)

        async def scenario(flavor: Flavor) -> tuple[Submitted, PollOutcome]:
            job = await flavor.create(create_request(sim.flavor, "later [duration:60]"), key)
            await flavor.cancel(job.upstream_id, job.poll_state, key)
            return job, await flavor.poll(job.upstream_id, job.poll_state, key)

        job, after = run(sim, scenario)
        if sim.flavor in WITH_CANCEL:
            assert job.upstream_id in sim.stats()["cancels"]
            assert isinstance(after, Failed)
        else:
            assert isinstance(after, Running)


@pytest.mark.parametrize("flavor_name", WITH_STATUS_WORDS)
def test_unknown_status_word_is_running(sims: dict[str, Simulator], flavor_name: str) -> None:
    sim, key = sims[flavor_name], vendor_key(flavor_name)

    async def scenario(flavor: Flavor) -> PollOutcome:
        job = await flavor.create(create_request(flavor_name, "odd [unknown-status] [never]"), key)
        await asyncio.sleep(0.1)
        return await flavor.poll(job.upstream_id, job.poll_state, key)

    assert run(sim, scenario) == Running("in_progress")


@pytest.mark.parametrize("flavor_name", REPORTS_SECONDS)
def test_rendered_seconds_are_reported(sims: dict[str, Simulator], flavor_name: str) -> None:
    sim, key = sims[flavor_name], vendor_key(flavor_name)

    async def scenario(flavor: Flavor) -> PollOutcome:
        job = await flavor.create(create_request(flavor_name, "short [render-seconds:3]"), key)
        return await settled(flavor, job, key)

    done = run(sim, scenario)
    assert isinstance(done, Completed)
    assert done.seconds == 3


@pytest.mark.parametrize(("flavor_name", "directive", "size"), [
    ("ark", "480p", "480p"), ("dashscope", "480P", "832x480"), ("minimax", "1080P", "1920x1080"),
    ("vidu", "1080p", "1080p")])
def test_rendered_size_is_reported(sims: dict[str, Simulator], flavor_name: str, directive: str,
                                   size: str) -> None:
    sim, key = sims[flavor_name], vendor_key(flavor_name)

    async def scenario(flavor: Flavor) -> PollOutcome:
        request = create_request(flavor_name, f"small [render-resolution:{directive}]")
        return await settled(flavor, await flavor.create(request, key), key)

    done = run(sim, scenario)
    assert isinstance(done, Completed)
    assert done.size == size


@pytest.mark.parametrize(("flavor_name", "metadata", "path", "expected"), [
    ("ark", {"watermark": True, "camera_fixed": True}, (),
     {"watermark": True, "camera_fixed": True}),
    ("dashscope", {"negative_prompt": "blur", "prompt_extend": False, "watermark": True},
     ("input",), {"negative_prompt": "blur"}),
    ("dashscope", {"negative_prompt": "blur", "prompt_extend": False, "watermark": True},
     ("parameters",), {"prompt_extend": False, "watermark": True}),
    ("kling", {"negative_prompt": "blur", "watermark": True}, (),
     {"negative_prompt": "blur", "watermark_info": {"enabled": True}}),
    ("gemini", {"negative_prompt": "blur", "person_generation": "allow_all"}, ("parameters",),
     {"negativePrompt": "blur", "personGeneration": "allow_all"}),
    ("minimax", {"prompt_extend": False, "watermark": True}, (),
     {"prompt_optimizer": False, "aigc_watermark": True}),
    ("vidu", {"movement_amplitude": "small", "watermark": True}, (),
     {"movement_amplitude": "small", "watermark": True}),
])
def test_metadata_in_the_vendors_words(sims: dict[str, Simulator], flavor_name: str,
                                       metadata: dict[str, object], path: tuple[str, ...],
                                       expected: dict[str, object]) -> None:
    sim, key = sims[flavor_name], vendor_key(flavor_name)
    request = create_request(flavor_name, "x", metadata=metadata)
    job = run(sim, lambda flavor: flavor.create(request, key))
    received: Any = sent_body(sim, job)
    for step in path:
        received = received[step]
    assert {name: received.get(name) for name in expected} == expected


@pytest.mark.parametrize("flavor_name", ["ark", "dashscope"])
def test_audio_asked_is_sent_and_reported(sims: dict[str, Simulator], flavor_name: str) -> None:
    sim, key = sims[flavor_name], vendor_key(flavor_name)

    async def scenario(flavor: Flavor) -> PollOutcome:
        job = await flavor.create(create_request(flavor_name, "loud", audio=True), key)
        return await settled(flavor, job, key)

    done = run(sim, scenario)
    assert isinstance(done, Completed)
    assert done.audio is True


@pytest.mark.parametrize(("flavor_name", "metadata", "magic"), [
    ("vidu", {}, b"\xff\xd8"), ("ark", {"return_last_frame": True}, b"\x89PNG")])
def test_thumbnail_where_the_vendor_offers_one(sims: dict[str, Simulator], flavor_name: str,
                                              metadata: dict[str, object], magic: bytes) -> None:
    sim, key = sims[flavor_name], vendor_key(flavor_name)

    async def scenario(flavor: Flavor) -> tuple[int, str | None, bytes]:
        job = await flavor.create(create_request(flavor_name, "framed", metadata=metadata), key)
        url = asset_url(await settled(flavor, job, key), "thumbnail")
        return await fetch(flavor, job, key, url, variant="thumbnail")

    status, _, image = run(sim, scenario)
    assert status == 200
    assert image.startswith(magic)


def test_a_stale_link_is_renewed_by_a_fresh_poll(sims: dict[str, Simulator]) -> None:
    sim, key = sims["vidu"], vendor_key("vidu")

    async def scenario(flavor: Flavor) -> tuple[Submitted, tuple[int, str | None, bytes]]:
        job = await flavor.create(create_request("vidu", "renewed"), key)
        url = asset_url(await settled(flavor, job, key))
        assert url is not None
        stale = url.replace("Signature=", "Signature=0")  # as a link past its hour fails
        return job, await fetch(flavor, job, key, stale)

    job, (status, _, video) = run(sim, scenario)
    assert status == 200
    assert video == expected_content(job.upstream_id, SIZE)


class TestKling:
    def test_the_task_kind_is_kept_for_its_polls(self, sims: dict[str, Simulator]) -> None:
        sim, key = sims["kling"], vendor_key("kling")

        async def scenario(flavor: Flavor) -> tuple[Submitted, PollOutcome]:
            job = await flavor.create(create_request("kling", "moving", image=True), key)
            return job, await flavor.poll(job.upstream_id, job.poll_state, key)

        job, polled = run(sim, scenario)
        assert job.poll_state == {"kind": "image2video"}
        assert isinstance(polled, Running)
        assert sim.job(job.upstream_id)["request"]["image"] == png_base64()  # no data: prefix

    @pytest.mark.parametrize(("key", "why"), [
        (f"{KLING_AK}:a-forged-secret-of-32-bytes-long", "answered 401"),
        ("no-colon", "malformed")])
    def test_a_key_kling_refuses_is_unavailable(self, sims: dict[str, Simulator], key: str,
                                                why: str) -> None:
        with pytest.raises(UpstreamUnavailable, match=why):
            run(sims["kling"], lambda flavor: flavor.create(create_request("kling", "x"), key))


class TestGemini:
    def test_keyed_download_keeps_the_key_from_the_redirect(
            self, sims: dict[str, Simulator]) -> None:
        sim, key = sims["gemini"], vendor_key("gemini")
        seen: list[httpx.Request] = []

        async def scenario(flavor: Flavor) -> tuple[Submitted, tuple[int, str | None, bytes]]:
            job = await flavor.create(create_request("gemini", "a keyed fox"), key)
            url = asset_url(await settled(flavor, job, key))
            assert job.poll_state == {"operation": job.upstream_id}
            return job, await fetch(flavor, job, key, url, range_header="bytes=0-99")

        job, (status, _, video) = run(sim, scenario, seen)
        assert (status, video) == (206, expected_content(job.upstream_id, SIZE)[:100])
        download, signed = seen[-2:]
        assert ":download" in download.url.path
        assert download.headers["x-goog-api-key"] == key
        assert signed.url.path.startswith("/_cdn/")
        assert "x-goog-api-key" not in signed.headers
        assert "authorization" not in signed.headers
        assert signed.headers["range"] == "bytes=0-99"

    def test_an_image_link_is_refused_before_any_call(self, sims: dict[str, Simulator]) -> None:
        sim, key = sims["gemini"], vendor_key("gemini")
        creates = sim.stats()["creates"]
        request = create_request("gemini", "x")
        linked = CreateRequest(**{**request.__dict__,
                                  "image": Image(url="https://images.example/fox.png")})
        with pytest.raises(UpstreamRefused) as refused:
            run(sim, lambda flavor: flavor.create(linked, key))
        assert (refused.value.status, refused.value.param) == (400, "input_reference")
        assert sim.stats()["creates"] == creates

    def test_a_wrong_key_is_unavailable_not_the_clients_fault(
            self, sims: dict[str, Simulator]) -> None:
        sim = sims["gemini"]
        with pytest.raises(UpstreamUnavailable):
            run(sim, lambda flavor: flavor.create(create_request("gemini", "x"), "wrong-key"))


def test_dashscope_unknown_task_is_unreachable(sims: dict[str, Simulator]) -> None:
    sim, key = sims["dashscope"], vendor_key("dashscope")
    polled = run(sim, lambda flavor: flavor.poll("b1c2-unknown", {}, key))
    assert polled == Unreachable("the upstream does not know the task")
