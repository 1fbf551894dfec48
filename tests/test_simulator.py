"""Behaviour of the fake video provider that the gateway tests run against."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from gateway import simulator
from gateway.simulator import create_simulator_app, expected_content, iter_content

AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture
def openai_client() -> Iterator[TestClient]:
    with TestClient(create_simulator_app("openai", duration_s=0.0)) as client:
        yield client


@pytest.fixture
def compat_client() -> Iterator[TestClient]:
    with TestClient(create_simulator_app("compat", duration_s=0.0)) as client:
        yield client


def _create(client: TestClient, prompt: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/videos", json={"prompt": prompt, **fields}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def _get(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/videos/{job_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def test_content_generators_agree_for_any_range() -> None:
    whole = expected_content("sim_abc", 5000)
    assert len(whole) == 5000
    assert whole[:8] == b"\x00\x00\x00\x18ftyp"
    assert b"".join(iter_content("sim_abc", 5000, 7, 4321, chunk=1000)) == whole[7:4321]
    assert expected_content("sim_other", 5000) != whole


def test_job_advances_with_wall_clock(openai_client: TestClient) -> None:
    created = _create(openai_client, "a cat [duration:0.4]", seconds="8", size="1280x720")
    assert created["object"] == "video"
    assert (created["status"], created["progress"], created["seconds"]) == ("queued", 0, "8")
    time.sleep(0.2)
    running = _get(openai_client, created["id"])
    assert running["status"] == "in_progress"
    assert 0 < running["progress"] < 100
    time.sleep(0.25)
    done = _get(openai_client, created["id"])
    assert (done["status"], done["progress"], done["error"]) == ("completed", 100, None)
    assert done["expires_at"] == done["completed_at"] + 3600


def test_fail_and_forced_finish(openai_client: TestClient) -> None:
    failed = _get(openai_client, _create(openai_client, "boom [fail]")["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "video_generation_failed"
    stuck = _create(openai_client, "slow [never]")
    assert _get(openai_client, stuck["id"])["progress"] == 50
    forced = openai_client.post(f"/_sim/jobs/{stuck['id']}/finish", json={"status": "completed"})
    assert forced.status_code == 200
    assert _get(openai_client, stuck["id"])["status"] == "completed"


def test_create_directives_and_faults(openai_client: TestClient) -> None:
    rejected = openai_client.post("/v1/videos", json={"prompt": "x [reject]"}, headers=AUTH)
    assert rejected.status_code == 400
    assert rejected.json()["error"]["code"] == "moderation_blocked"
    limited = openai_client.post("/v1/videos", json={"prompt": "x [status:429]"}, headers=AUTH)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert "sk-upstream-secret" in limited.json()["error"]["message"]
    openai_client.post("/_sim/faults", json={"create_status": 503, "count": 1})
    assert openai_client.post("/v1/videos", json={"prompt": "a"}, headers=AUTH).status_code == 503
    assert openai_client.post("/v1/videos", json={"prompt": "a"}, headers=AUTH).status_code == 200


def test_range_requests_on_video(openai_client: TestClient) -> None:
    job = _create(openai_client, "clip [size:100000]")
    url = f"/v1/videos/{job['id']}/content"
    expected = expected_content(job["id"], 100_000)
    full = openai_client.get(url, headers=AUTH)
    assert full.status_code == 200
    assert full.headers["content-type"] == "video/mp4"
    assert full.headers["content-length"] == "100000"
    assert full.content == expected
    part = openai_client.get(url, headers={**AUTH, "Range": "bytes=10-99"})
    assert part.status_code == 206
    assert part.headers["content-range"] == "bytes 10-99/100000"
    assert part.content == expected[10:100]
    tail = openai_client.get(url, headers={**AUTH, "Range": "bytes=-16"})
    assert (tail.status_code, tail.content) == (206, expected[-16:])
    beyond = openai_client.get(url, headers={**AUTH, "Range": "bytes=100000-"})
    assert beyond.status_code == 416


def test_content_not_ready_and_unknown(openai_client: TestClient) -> None:
    pending = _create(openai_client, "later [never]")
    response = openai_client.get(f"/v1/videos/{pending['id']}/content", headers=AUTH)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "video_not_ready"
    missing = openai_client.get("/v1/videos/sim_nope/content", headers=AUTH)
    assert missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("variant", "media", "fmt"),
    [
        ("thumbnail", "image/webp", "WEBP"),
        ("spritesheet", "image/jpeg", "JPEG"),
    ],
)
def test_preview_variants_are_real_images(
    openai_client: TestClient, variant: str, media: str, fmt: str
) -> None:
    job = _create(openai_client, "preview")
    url = f"/v1/videos/{job['id']}/content?variant={variant}"
    response = openai_client.get(url, headers=AUTH)
    assert response.headers["content-type"] == media
    assert Image.open(io.BytesIO(response.content)).format == fmt


def test_content_break_truncates_the_body(openai_client: TestClient) -> None:
    job = _create(openai_client, "flaky [content-break] [size:1000]")
    # In-process transports surface the abort as the exception raised mid-stream.
    with pytest.raises(ConnectionAbortedError):
        openai_client.get(f"/v1/videos/{job['id']}/content", headers=AUTH)


def test_auth_is_enforced() -> None:
    with TestClient(create_simulator_app(api_keys=["sk-good"])) as client:
        missing = client.get("/v1/videos")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        wrong = client.get("/v1/videos", headers={"Authorization": "Bearer sk-bad"})
        assert wrong.status_code == 401
        good = client.get("/v1/videos", headers={"Authorization": "Bearer sk-good"})
        assert good.json()["object"] == "list"


def test_compat_dialect(compat_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _create(compat_client, "dog [duration:0.2] [expire-url]", seconds="5")
    assert (job["object"], job["status"], job["seconds"]) == ("video.task", "processing", 5)
    time.sleep(0.25)
    done = _get(compat_client, job["id"])
    assert done["status"] == "succeeded"
    assert done["video_url"] == f"http://testserver/files/{job['id']}.mp4"
    download = compat_client.get(done["video_url"])
    assert download.content == expected_content(job["id"], 256 * 1024)
    assert compat_client.get(f"/v1/videos/{job['id']}/content", headers=AUTH).status_code == 404
    monkeypatch.setattr(simulator, "EXPIRING_URL_TTL_S", 0.0)
    assert compat_client.get(done["video_url"]).status_code == 404
    assert "url" in _get(compat_client, _create(compat_client, "x [url-field]")["id"])
    failed = _get(compat_client, _create(compat_client, "x [fail] [string-error]")["id"])
    assert (failed["status"], failed["error"]) == ("failed", "generation failed")


def test_stats_record_requests(openai_client: TestClient) -> None:
    files = {"input_reference": ("ref.png", b"\x89PNG" + b"0" * 96, "image/png")}
    form = {"prompt": "from image", "model": "sora-2", "metadata": "tag"}
    created = openai_client.post("/v1/videos", data=form, files=files, headers=AUTH).json()
    remixed = openai_client.post(
        f"/v1/videos/{created['id']}/remix", json={"prompt": "again"}, headers=AUTH
    ).json()
    assert remixed["remixed_from_video_id"] == created["id"]
    _get(openai_client, created["id"])
    assert openai_client.delete(f"/v1/videos/{remixed['id']}", headers=AUTH).json()["deleted"]
    stats = openai_client.get("/_sim/stats").json()
    assert stats["creates"] == 1
    assert stats["retrieves"] == {created["id"]: 1}
    assert stats["remixes"] == [{"new_id": remixed["id"], "source_id": created["id"]}]
    assert stats["deletes"] == [remixed["id"]]
    record = stats["jobs"][created["id"]]
    assert (record["key"], record["metadata"], record["has_input_reference"]) == (
        "sk-test",
        "tag",
        True,
    )
    assert record["input_reference_bytes"] == 100
    openai_client.post("/_sim/reset")
    assert openai_client.get("/_sim/stats").json()["jobs"] == {}


def test_concurrent_retrieves_are_counted() -> None:
    app = create_simulator_app(duration_s=0.0)

    async def scenario() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            created = (await client.post("/v1/videos", json={"prompt": "p"}, headers=AUTH)).json()
            url = f"/v1/videos/{created['id']}"
            await asyncio.gather(*(client.get(url, headers=AUTH) for _ in range(3)))
            await client.get(url, headers=AUTH)
            stats = (await client.get("/_sim/stats")).json()
            return {"id": created["id"], **stats}

    stats = asyncio.run(scenario())
    assert stats["retrieves"][stats["id"]] == 4
    assert stats["max_concurrent_retrieves"][stats["id"]] == 3
