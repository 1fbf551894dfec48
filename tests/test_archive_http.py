"""HTTP semantics of content served from the archive: HEAD, If-Range and If-None-Match, alike
on the API's content route, a signed link and the operator console's preview route."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from email.utils import formatdate, parsedate_to_datetime

import httpx
import pytest

from gateway.simulator import expected_content
from tests.support.archive import (
    Archived,
    archive_config,
    blob_names,
    quoted_sha256,
    remove_blob,
    wait_archive_state,
)
from tests.support.s3 import S3Server
from tests.support.servers import ADMIN_TOKEN, Gateway, Simulator, base_config, upstream

SIZE = 120_000
# What a HEAD must answer as its GET does.
SAME = ("etag", "last-modified", "content-length", "content-type", "content-range",
        "accept-ranges", "cache-control")

Fetch = Callable[..., httpx.Response]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    simulator = Simulator(flavor="openai", duration_s=0.3).start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module", params=["local", "s3"])
def archived(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             sim: Simulator) -> Iterator[Archived]:
    s3 = request.getfixturevalue("s3_server") if request.param == "s3" else None
    config = base_config([upstream("primary", sim, ["official"])],
                         archive=archive_config(request.param, s3))
    gw = Gateway(tmp_path_factory.mktemp(f"archive-http-{request.param}"), config).start()
    yield Archived(gw, sim, s3)
    gw.stop()


@pytest.fixture(scope="module")
def stored(archived: Archived) -> tuple[str, str, bytes]:
    """A video stored in the archive and gone from its upstream: id, token, bytes."""
    video_id, upstream_id, token = archived.finished(f"http {uuid.uuid4().hex[:10]} "
                                                     f"[size:{SIZE}]")
    wait_archive_state(archived.gw, video_id)
    return video_id, token, expected_content(upstream_id, SIZE)


def _api(archived: Archived, stored: tuple[str, str, bytes]) -> Fetch:
    video_id, token, _ = stored

    def fetch(method: str = "GET", **headers: str) -> httpx.Response:
        return httpx.request(method, f"{archived.gw.url}/v1/videos/{video_id}/content",
                             headers={"Authorization": f"Bearer {token}", **headers}, timeout=30)
    return fetch


def _link(archived: Archived, stored: tuple[str, str, bytes]) -> Fetch:
    video_id, token, _ = stored
    shared = httpx.post(f"{archived.gw.url}/v1/videos/{video_id}/share", json={},
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert shared.status_code == 200, shared.text
    url = shared.json()["url"]

    def fetch(method: str = "GET", **headers: str) -> httpx.Response:
        return httpx.request(method, url, headers=headers, timeout=30)
    return fetch


def _console(archived: Archived, stored: tuple[str, str, bytes]) -> Fetch:
    video_id = stored[0]

    def fetch(method: str = "GET", **headers: str) -> httpx.Response:
        return httpx.request(method, f"{archived.gw.url}/admin/videos/{video_id}/content",
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}", **headers},
                             timeout=30)
    return fetch


@pytest.fixture(params=[_api, _link, _console], ids=["api", "signed-link", "console"])
def fetch(request: pytest.FixtureRequest, archived: Archived,
          stored: tuple[str, str, bytes]) -> Fetch:
    route: Callable[[Archived, tuple[str, str, bytes]], Fetch] = request.param
    return route(archived, stored)


def _same_headers(head: httpx.Response, get: httpx.Response) -> None:
    assert head.status_code == get.status_code
    assert head.content == b""
    assert {name: head.headers.get(name) for name in SAME} == \
        {name: get.headers.get(name) for name in SAME}


class TestHead:
    def test_head_answers_the_headers_of_get_and_no_body(self, fetch: Fetch) -> None:
        for headers in ({}, {"Range": "bytes=100-199"}, {"Range": "bytes=-7"}):
            _same_headers(fetch("HEAD", **headers), fetch("GET", **headers))
        whole = fetch("HEAD")
        assert (whole.status_code, whole.headers["content-length"]) == (200, str(SIZE))
        part = fetch("HEAD", Range="bytes=100-199")
        assert (part.status_code, part.headers["content-range"]) == (206, f"bytes 100-199/{SIZE}")

    def test_head_honours_if_none_match_and_refuses_a_range_past_the_end(
            self, fetch: Fetch, stored: tuple[str, str, bytes]) -> None:
        etag = quoted_sha256(stored[2])
        same = fetch("HEAD", **{"If-None-Match": etag})
        beyond = fetch("HEAD", Range=f"bytes={SIZE}-")
        assert (same.status_code, same.headers["etag"]) == (304, etag)
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{SIZE}"


    def test_head_of_a_blob_gone_from_the_store_is_the_404_its_get_is(
            self, archived: Archived) -> None:
        video_id, _, token = archived.finished(f"gone {uuid.uuid4().hex[:10]} [size:{SIZE}]")
        wait_archive_state(archived.gw, video_id)
        key = next(name for name in blob_names(archived.gw, archived.s3)
                   if name.startswith(f"{video_id}/video."))
        remove_blob(archived.gw, archived.s3, key)
        fetch = _api(archived, (video_id, token, b""))
        for headers in ({}, {"Range": "bytes=0-9"}, {"Range": f"bytes={SIZE}-"}):
            get, head = fetch("GET", **headers), fetch("HEAD", **headers)
            assert get.status_code == 404, headers
            assert get.json()["error"]["code"] == "not_found"
            _same_headers(head, get)
            assert head.headers["x-request-id"]

class TestConditional:
    def test_if_none_match_answers_304_on_every_route(
            self, fetch: Fetch, stored: tuple[str, str, bytes]) -> None:
        etag = quoted_sha256(stored[2])
        for tags in (etag, f'"other", W/{etag}', "*"):
            answer = fetch(**{"If-None-Match": tags})
            assert (answer.status_code, answer.content) == (304, b""), tags
            assert answer.headers["etag"] == etag
        assert fetch(**{"If-None-Match": '"other"'}).status_code == 200

    def test_if_range_that_matches_continues_the_range(
            self, fetch: Fetch, stored: tuple[str, str, bytes]) -> None:
        data = stored[2]
        last_modified = fetch("HEAD").headers["last-modified"]
        for validator in (quoted_sha256(data), last_modified):
            answer = fetch(Range="bytes=1000-1999", **{"If-Range": validator})
            assert (answer.status_code, answer.content) == (206, data[1000:2000]), validator
            assert answer.headers["content-range"] == f"bytes 1000-1999/{SIZE}"

    def test_if_range_for_another_copy_gets_the_whole_video(
            self, fetch: Fetch, stored: tuple[str, str, bytes]) -> None:
        data = stored[2]
        stored_at = parsedate_to_datetime(fetch("HEAD").headers["last-modified"]).timestamp()
        for validator in ('"another-copy"', "W/" + quoted_sha256(data),
                          formatdate(stored_at - 3600, usegmt=True), "not a date"):
            answer = fetch(Range="bytes=1000-1999", **{"If-Range": validator})
            assert (answer.status_code, answer.content) == (200, data), validator
            assert "content-range" not in answer.headers
            assert answer.headers["content-length"] == str(SIZE)

    def test_if_range_under_head_says_which_answer_get_would_give(self, fetch: Fetch) -> None:
        stale = fetch("HEAD", Range="bytes=0-9", **{"If-Range": '"another-copy"'})
        assert (stale.status_code, stale.headers["content-length"]) == (200, str(SIZE))


def test_the_upstream_is_not_asked_for_what_the_archive_answers(
        archived: Archived, stored: tuple[str, str, bytes]) -> None:
    fetch = _api(archived, stored)
    before = archived.sim.stats()["content_requests"]
    fetch("HEAD")
    fetch(Range="bytes=0-9", **{"If-Range": quoted_sha256(stored[2])})
    assert archived.sim.stats()["content_requests"] == before


def test_the_archive_needs_the_gateway_token_for_head_too(
        archived: Archived, stored: tuple[str, str, bytes]) -> None:
    video_id, _, _ = stored
    other = archived.token()
    url = f"{archived.gw.url}/v1/videos/{video_id}/content"
    assert httpx.head(url, timeout=30).status_code == 401
    assert httpx.head(url, headers={"Authorization": f"Bearer {other}"},
                      timeout=30).status_code == 404
    assert httpx.head(f"{archived.gw.url}/admin/videos/{video_id}/content",
                      timeout=30).status_code == 401


# A redirect's presigned URL works this long: long enough to follow, short enough to outlive.
REDIRECT_EXPIRES_S = 2


@pytest.fixture(scope="module")
def redirected(tmp_path_factory: pytest.TempPathFactory, sim: Simulator,
               s3_server: S3Server) -> Iterator[tuple[Fetch, bytes]]:
    """A gateway on S3 that answers content with a redirect, and one video stored there."""
    config = base_config([upstream("primary", sim, ["official"])],
                         archive=archive_config("s3", s3_server, redirect=True,
                                                redirect_expires_s=REDIRECT_EXPIRES_S))
    gw = Gateway(tmp_path_factory.mktemp("archive-redirect"), config).start()
    archived = Archived(gw, sim, s3_server)
    video_id, upstream_id, token = archived.finished(f"redirect {uuid.uuid4().hex[:10]} "
                                                     f"[size:{SIZE}]")
    wait_archive_state(gw, video_id)
    yield _api(archived, (video_id, token, b"")), expected_content(upstream_id, SIZE)
    gw.stop()


class TestRedirect:
    def test_head_is_redirected_to_a_url_that_answers_head(
            self, redirected: tuple[Fetch, bytes]) -> None:
        fetch, data = redirected
        get, head = fetch("GET"), fetch("HEAD")
        assert (get.status_code, head.status_code) == (302, 302)
        assert head.headers["etag"] == get.headers["etag"] == quoted_sha256(data)
        followed = httpx.head(head.headers["location"], timeout=30)
        assert followed.status_code == 200
        assert followed.headers["content-length"] == str(SIZE)
        assert httpx.get(get.headers["location"], timeout=30).content == data

    def test_a_redirects_url_stops_working_after_its_lifetime(
            self, redirected: tuple[Fetch, bytes]) -> None:
        fetch, data = redirected
        location = fetch("GET").headers["location"]
        assert httpx.get(location, timeout=30).content == data
        time.sleep(REDIRECT_EXPIRES_S + 1.5)  # SigV4 counts whole seconds from X-Amz-Date
        assert httpx.get(location, timeout=30).status_code == 403
        assert httpx.get(fetch("GET").headers["location"], timeout=30).content == data
