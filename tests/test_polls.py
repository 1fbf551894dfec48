"""``GET /v1/videos/{id}`` is answered before the application's router: it must answer exactly
as the route would, and leave every other request to the application."""

from __future__ import annotations

import httpx
import pytest

from tests.support.observe import metric
from tests.support.servers import Gateway

ROUTE = "/v1/videos/{video_id}"


@pytest.fixture(scope="module")
def polled(gateway: Gateway) -> tuple[str, str]:
    _, token = gateway.create_token(balance_usd="1")
    video = gateway.client(token).videos.create(prompt="polled [duration:30]")
    return token, video.id


def _get(gw: Gateway, path: str, token: str | None, method: str = "GET") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{gw.url}{path}", headers=headers, timeout=30)


def test_a_poll_answers_the_video_with_the_pace_and_a_request_id(
        gateway: Gateway, polled: tuple[str, str]) -> None:
    token, video_id = polled
    before = metric(gateway, "gateway_requests_total", route=ROUTE, status="200")
    answer = _get(gateway, f"/v1/videos/{video_id}", token)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["openai-poll-after-ms"].isdigit()
    assert answer.headers["x-request-id"].startswith("req_")
    listed = gateway.client(token).videos.list().data
    assert answer.json() == listed[0].model_dump(mode="json")
    assert metric(gateway, "gateway_requests_total", route=ROUTE, status="200") == before + 1


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("sk-not-ours", 401),
                                              ("stranger", 404)])
def test_refusals_are_the_routes_own(gateway: Gateway, polled: tuple[str, str],
                                     token: str | None, status: int) -> None:
    if token == "stranger":
        _, token = gateway.create_token(balance_usd="1")
    answer = _get(gateway, f"/v1/videos/{polled[1]}", token)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert answer.headers["x-should-retry"] == "false"


def test_other_methods_and_paths_reach_the_application(gateway: Gateway,
                                                      polled: tuple[str, str]) -> None:
    token, video_id = polled
    assert _get(gateway, f"/v1/videos/{video_id}", token, method="PUT").status_code == 405
    assert _get(gateway, f"/v1/videos/{video_id}/", token).status_code in (307, 404)
    content = _get(gateway, f"/v1/videos/{video_id}/content", token)
    assert content.status_code == 409  # not finished: the content route's own answer
