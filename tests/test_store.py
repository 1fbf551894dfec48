"""Finished videos outlive the upstream's expiring download links."""

from __future__ import annotations

import uuid

import httpx

from gateway.simulator import expected_content
from tests.conftest import wait_for
from tests.support.servers import Gateway, Simulator


def _upstream_id(sim: Simulator, prompt: str) -> str:
    return next(uid for uid, job in sim.stats()["jobs"].items() if job["prompt"] == prompt)


class TestContentStore:
    def test_video_still_downloads_after_the_upstream_link_expired(
            self, gateway: Gateway, compat_simulator: Simulator) -> None:
        _, token = gateway.create_token(group="resale")
        client = gateway.client(token)
        prompt = f"expiring {uuid.uuid4()} [expire-url] [duration:0.3] [size:300000]"
        video = client.videos.create_and_poll(prompt=prompt, poll_interval_ms=100)
        assert video.status == "completed"
        upstream_id = _upstream_id(compat_simulator, prompt)
        url = f"{compat_simulator.url}/files/{upstream_id}.mp4"
        wait_for(lambda: httpx.get(url).status_code == 404, timeout=10)

        content = client.videos.download_content(video.id).content

        assert content == expected_content(upstream_id, 300000)

    def test_stored_copy_answers_ranges(self, gateway: Gateway, simulator: Simulator) -> None:
        _, token = gateway.create_token()
        prompt = f"stored {uuid.uuid4()} [duration:0.3] [size:100000]"
        video = gateway.client(token).videos.create_and_poll(prompt=prompt,
                                                             poll_interval_ms=100)
        expected = expected_content(_upstream_id(simulator, prompt), 100000)
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{gateway.url}/v1/videos/{video.id}/content"
        with gateway.admin() as admin:  # the copy is taken in the background
            wait_for(lambda: admin.get(f"/admin/videos/{video.id}").json()["content_stored"])
        before = simulator.stats()["content_requests"]

        partial = httpx.get(url, headers={**headers, "Range": "bytes=10-19"})
        beyond = httpx.get(url, headers={**headers, "Range": "bytes=200000-"})

        assert partial.status_code == 206
        assert partial.content == expected[10:20]
        assert partial.headers["content-range"] == "bytes 10-19/100000"
        assert beyond.status_code == 416
        assert beyond.json()["error"]["type"] == "invalid_request_error"
        assert simulator.stats()["content_requests"] == before
