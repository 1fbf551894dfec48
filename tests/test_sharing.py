"""Signed content links: ``POST /v1/videos/{id}/share`` and the token-less content route."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gateway.errors import InvalidRequest, PermissionDenied
from gateway.simulator import expected_content
from gateway.videos.sharing import MAX_SHARE_S, Linker, ShareRequest
from tests.support.checks import assert_invalid
from tests.support.servers import Gateway, Simulator

SIZE = 200_000


def _share(gw: Gateway, token: str, video_id: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/videos/{video_id}/share", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def shared(gateway: Gateway, simulator: Simulator) -> dict[str, Any]:
    _, token = gateway.create_token(balance_usd="5")
    client = gateway.client(token)
    prompt = f"shared {id(client)} [size:{SIZE}] [duration:0.2]"
    video = client.videos.create_and_poll(prompt=prompt, poll_interval_ms=100)
    assert video.status == "completed", video
    upstream_id, _ = simulator.job_for(prompt)
    answer = _share(gateway, token, video.id, expires_in=600)
    assert answer.status_code == 200, answer.text
    return {"token": token, "video": video, "link": answer.json(),
            "bytes": expected_content(upstream_id, SIZE)}


def test_a_shared_link_downloads_the_video_without_a_token(shared: dict[str, Any]) -> None:
    link = shared["link"]
    assert link["object"] == "video.share"
    assert link["id"] == shared["video"].id
    assert link["variant"] == "video"
    response = httpx.get(link["url"], timeout=30)
    assert response.status_code == 200, response.text
    assert response.content == shared["bytes"]
    assert response.headers["content-type"] == "video/mp4"
    ranged = httpx.get(link["url"], headers={"Range": "bytes=10-19"}, timeout=30)
    assert ranged.status_code == 206
    assert ranged.content == shared["bytes"][10:20]


def test_the_link_expires_when_it_says(shared: dict[str, Any]) -> None:
    query = parse_qs(urlsplit(shared["link"]["url"]).query)
    assert int(query["expires"][0]) == shared["link"]["expires_at"]
    assert 590 <= shared["link"]["expires_at"] - shared["video"].created_at <= 700


def _tampered(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return parts._replace(query=urlencode({**query, **changes})).geturl()


@pytest.mark.parametrize("changes", [
    {"signature": "A" * 43},
    {"expires": "9999999999"},
    {"variant": "thumbnail"},
    {"signature": ""},
])
def test_a_tampered_link_is_refused_and_says_nothing(shared: dict[str, Any],
                                                       changes: dict[str, str]) -> None:
    response = httpx.get(_tampered(shared["link"]["url"], **changes), timeout=30)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_link"
    assert error["message"] == "This link is not valid or has expired."


def test_a_link_for_one_video_does_not_open_another(gateway: Gateway,
                                                    shared: dict[str, Any]) -> None:
    url = shared["link"]["url"].replace(shared["video"].id, "video_" + "0" * 32)
    assert httpx.get(url, timeout=30).status_code == 403


def test_content_without_a_token_or_a_link_is_401(gateway: Gateway,
                                                  shared: dict[str, Any]) -> None:
    response = httpx.get(f"{gateway.url}/v1/videos/{shared['video'].id}/content", timeout=30)
    assert response.status_code == 401


def test_only_the_owner_can_share(gateway: Gateway, shared: dict[str, Any]) -> None:
    _, stranger = gateway.create_token(balance_usd="1")
    response = _share(gateway, stranger, shared["video"].id)
    assert response.status_code == 404


@pytest.mark.parametrize("body", [{"expires_in": 5}, {"expires_in": MAX_SHARE_S + 1},
                                  {"expires_in": "soon"}, {"expires_in": True}])
def test_bad_lifetimes_are_400(gateway: Gateway, shared: dict[str, Any],
                               body: dict[str, Any]) -> None:
    assert_invalid(_share(gateway, shared["token"], shared["video"].id, **body), "expires_in")


def test_an_unfinished_video_cannot_be_shared(gateway: Gateway) -> None:
    _, token = gateway.create_token(balance_usd="5")
    video = gateway.client(token).videos.create(prompt="not yet [duration:30]")
    response = _share(gateway, token, video.id)
    assert response.status_code == 409, response.text


# -- the pure parts ---------------------------------------------------------------------------
def test_a_link_checks_at_the_clock_it_is_given() -> None:
    linker = Linker(b"k" * 32, "https://videos.example")
    link = linker.share("http://ignored/", "video_abc", ShareRequest(expires_in=60), at=1000)
    assert link.url.startswith("https://videos.example/v1/videos/video_abc/content?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(link.url).query).items()}
    linker.check("video_abc", "video", query["expires"], query["signature"], at=1059)
    with pytest.raises(PermissionDenied):
        linker.check("video_abc", "video", query["expires"], query["signature"], at=1060)
    with pytest.raises(PermissionDenied):
        Linker(b"x" * 32).check("video_abc", "video", query["expires"], query["signature"],
                                at=1000)


def test_share_request_parsing() -> None:
    assert ShareRequest.parse({}) == ShareRequest()
    assert ShareRequest.parse({"expires_in": "120"}).expires_in == 120
    for bad in ({"expires_in": 1.5}, {"variant": "audio"}, {"colour": "red"}):
        with pytest.raises(InvalidRequest):
            ShareRequest.parse(bad)
