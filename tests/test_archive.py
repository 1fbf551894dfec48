"""The archive: every finished video kept by the gateway, served from it, and let go of.

Each backend gets one gateway for the module; the SQLite/PostgreSQL split comes from running
the suite twice (GATEWAY_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from alembic import command

from gateway.migrate import alembic_config
from gateway.simulator import expected_content
from tests.conftest import wait_for
from tests.support.archive import (
    Archived,
    archive_config,
    blob_names,
    forget_upstream,
    quoted_sha256,
    upstream_asset,
    wait_archive_state,
)
from tests.support.database import execute
from tests.support.observe import logged, metric, wait_logged
from tests.support.s3 import S3Server
from tests.support.servers import Gateway, Simulator, base_config, upstream

SIZE = 200_000
# About 2.6 s: long enough to be stored and read once, short enough to wait out.
BRIEF_RETENTION_DAYS = 0.00003


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    simulator = Simulator(flavor="openai", duration_s=0.3).start()
    yield simulator
    simulator.stop()


def _config(sim: Simulator, compat: Simulator, archive: dict[str, object]) -> dict[str, object]:
    config = base_config([upstream("primary", sim, ["official", "brief"]),
                          upstream("reseller", compat, ["resale"])], archive=archive)
    groups = config["groups"]
    groups["brief"] = {"billing_modes": ["per_second"], "retention_days": BRIEF_RETENTION_DAYS}
    return config


@pytest.fixture(scope="module", params=["local", "s3"])
def archived(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             sim: Simulator, compat_simulator: Simulator) -> Iterator[Archived]:
    s3 = request.getfixturevalue("s3_server") if request.param == "s3" else None
    config = _config(sim, compat_simulator, archive_config(request.param, s3))
    gw = Gateway(tmp_path_factory.mktemp(f"archive-{request.param}"), config).start()
    yield Archived(gw, sim, s3)
    gw.stop()


def _tag(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:10]}"


class TestKeeping:
    def test_video_and_thumbnail_outlive_the_upstream_byte_for_byte(
            self, archived: Archived) -> None:
        prompt = _tag("kept") + f" [size:{SIZE}]"
        video_id, upstream_id, token = archived.finished(prompt)
        thumbnail = upstream_asset(archived.sim, upstream_id, "thumbnail")
        view = wait_archive_state(archived.gw, video_id)
        forget_upstream(archived.sim, upstream_id)
        client = archived.gw.client(token)

        body = client.videos.download_content(video_id).read()
        picture = client.videos.download_content(video_id, variant="thumbnail")

        assert body == expected_content(upstream_id, SIZE)
        assert picture.read() == thumbnail
        assert picture.response.headers["content-type"] == "image/webp"
        assert picture.response.headers["etag"] == quoted_sha256(thumbnail)
        assert blob_names(archived.gw, archived.s3) >= [
            f"{video_id}/spritesheet.jpg", f"{video_id}/thumbnail.webp",
            f"{video_id}/video.mp4"]
        # expires_at is now the gateway's retention (7 days by default), not the upstream's hour.
        assert client.videos.retrieve(video_id).expires_at == view["expires_at"]
        assert view["expires_at"] > time.time() + 6.9 * 86400

    def test_ranges_validators_and_not_modified_come_from_the_archive(
            self, archived: Archived) -> None:
        prompt = _tag("ranged") + f" [size:{SIZE}]"
        video_id, upstream_id, token = archived.finished(prompt)
        wait_archive_state(archived.gw, video_id)
        expected = expected_content(upstream_id, SIZE)
        before = archived.sim.stats()["content_requests"]

        whole = archived.content(video_id, token)
        part = archived.content(video_id, token, Range="bytes=10-19")
        tail = archived.content(video_id, token, Range="bytes=-5")
        beyond = archived.content(video_id, token, Range=f"bytes={SIZE}-")
        same = archived.content(video_id, token, **{"If-None-Match": whole.headers["etag"]})

        assert whole.status_code == 200
        assert whole.content == expected
        assert whole.headers["etag"] == quoted_sha256(expected)
        assert whole.headers["content-length"] == str(SIZE)
        assert whole.headers["content-type"] == "video/mp4"
        stored_at = parsedate_to_datetime(whole.headers["last-modified"]).timestamp()
        assert abs(stored_at - time.time()) < 60
        assert (part.status_code, part.content) == (206, expected[10:20])
        assert part.headers["content-range"] == f"bytes 10-19/{SIZE}"
        assert (tail.status_code, tail.content) == (206, expected[-5:])
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{SIZE}"
        assert beyond.json()["error"]["code"] == "range_not_satisfiable"
        assert (same.status_code, same.content) == (304, b"")
        assert same.headers["etag"] == whole.headers["etag"]
        assert archived.sim.stats()["content_requests"] == before  # the upstream was not asked

    def test_a_download_link_that_expired_still_serves_the_video(
            self, archived: Archived, compat_simulator: Simulator) -> None:
        token = archived.token(group="resale")
        prompt = _tag("expiring") + " [expire-url] [duration:0.3] [size:30000]"
        video = archived.gw.client(token).videos.create_and_poll(prompt=prompt,
                                                                 poll_interval_ms=100)
        upstream_id = compat_simulator.job_for(prompt)[0]
        wait_archive_state(archived.gw, video.id)
        link = f"{compat_simulator.url}/files/{upstream_id}.mp4"
        wait_for(lambda: httpx.get(link).status_code == 404, timeout=10)

        body = archived.gw.client(token).videos.download_content(video.id).read()
        thumbnail = archived.content(video.id, token, variant="thumbnail")

        assert body == expected_content(upstream_id, 30000)
        # This upstream offers no thumbnail: none was kept, and none is served.
        assert thumbnail.status_code == 404
        assert thumbnail.json()["error"]["code"] == "not_found"

    def test_a_download_failing_three_times_is_retried_until_stored(
            self, archived: Archived) -> None:
        prompt = _tag("flaky") + " [content-fail:3] [size:5000]"
        video_id, upstream_id, token = archived.finished(prompt)

        view = wait_archive_state(archived.gw, video_id)

        assert view["archive_attempts"] == 4
        forget_upstream(archived.sim, upstream_id)
        body = archived.gw.client(token).videos.download_content(video_id).read()
        assert body == expected_content(upstream_id, 5000)

    def test_deleting_a_video_deletes_its_blobs(self, archived: Archived) -> None:
        video_id, _, token = archived.finished(_tag("deleted") + " [size:5000]")
        wait_archive_state(archived.gw, video_id)
        assert any(name.startswith(video_id) for name in blob_names(archived.gw, archived.s3))

        archived.gw.client(token).videos.delete(video_id)

        assert not any(name.startswith(video_id)
                       for name in blob_names(archived.gw, archived.s3))


class TestLettingGo:
    def test_past_its_groups_retention_a_video_is_swept_and_gone(
            self, archived: Archived) -> None:
        token = archived.token(group="brief")
        video_id, _, _ = archived.finished(_tag("brief") + " [size:5000]", token)
        view = wait_archive_state(archived.gw, video_id)
        assert view["expires_at"] <= time.time() + 3

        wait_archive_state(archived.gw, video_id, "expired", timeout=15)
        gone = archived.content(video_id, token)

        assert gone.status_code == 404
        error = gone.json()["error"]
        assert error["code"] == "not_found"
        assert "expired" in error["message"]
        assert not any(name.startswith(video_id)
                       for name in blob_names(archived.gw, archived.s3))

    def test_a_video_that_cannot_be_archived_in_time_is_failed_counted_and_listed(
            self, archived: Archived) -> None:
        gw = archived.gw
        failures = metric(gw, "gateway_archive_failures_total")
        # Links that die 2 s after completion, and every download fails until then.
        prompt = _tag("doomed") + " [content-fail:1000] [expires:2] [size:5000]"
        video_id, _, _ = archived.finished(prompt)

        view = wait_archive_state(gw, video_id, "failed", timeout=20)

        assert view["archive_attempts"] >= 2
        with gw.admin() as admin:
            listed = admin.get("/admin/videos", params={"archive": "failed"}).json()["data"]
        assert video_id in [row["id"] for row in listed]
        assert {row["archive_state"] for row in listed} == {"failed"}
        assert metric(gw, "gateway_archive_failures_total") >= failures + 1
        [line] = wait_logged(gw, "video could not be archived before its upstream link expired",
                             job_id=video_id)
        assert line["level"] == "warning"
        assert archived.sim.url not in json.dumps(line)
        shown = gw.cli("jobs", "list", "--archive", "failed", "--format", "json")
        assert shown.returncode == 0, shown.stderr
        rows = json.loads(shown.stdout)
        assert video_id in [row["id"] for row in rows]
        assert {row["archive_state"] for row in rows} == {"failed"}

    def test_an_unknown_archive_filter_is_refused(self, archived: Archived) -> None:
        with archived.gw.admin() as admin:
            response = admin.get("/admin/videos", params={"archive": "lost"})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "archive"


# -- processes -------------------------------------------------------------------------------
class TestProcesses:
    def test_an_archive_cut_short_by_kill_9_is_finished_after_restart(
            self, tmp_path: Path, sim: Simulator, compat_simulator: Simulator) -> None:
        # The deprecated content_store: section still names where videos are kept.
        config = _config(sim, compat_simulator, {})
        del config["archive"]
        config["content_store"] = {"dir": "./legacy", "retention_s": 3600}
        config["jobs"] = {**config["jobs"], "lease_s": 2}  # type: ignore[dict-item]
        gw = Gateway(tmp_path, config).start()
        try:
            prompt = _tag("killed") + " [content-delay:2] [size:50000]"
            before = sim.stats()["content_requests"]
            video_id, upstream_id, token = Archived(gw, sim, None).finished(prompt)
            wait_for(lambda: sim.stats()["content_requests"] > before, timeout=10)
            gw.kill()  # mid-download: the lease is held by a process that is gone
            assert admin_view_after_restart(gw, video_id) == "stored"
            body = gw.client(token).videos.download_content(video_id).read()
            assert body == expected_content(upstream_id, 50000)
            assert (tmp_path / "legacy" / "data" / video_id / "video.mp4").is_file()
            assert logged(gw, "the content_store: section is deprecated and will stop being "
                              "read in the next release; use archive: (dir, retention_days) "
                              "instead")
        finally:
            gw.stop()

    def test_a_video_archived_by_one_process_is_served_by_another_and_redirected(
            self, tmp_path: Path, sim: Simulator, compat_simulator: Simulator,
            s3_server: S3Server) -> None:
        archive = archive_config("s3", s3_server, redirect=True)
        first = Gateway(tmp_path, _config(sim, compat_simulator, archive)).start()
        try:
            video_id, upstream_id, token = Archived(first, sim, s3_server).finished(
                _tag("shared") + " [size:40000]")
            wait_archive_state(first, video_id)
            forget_upstream(sim, upstream_id)
            second_config = {**_config(sim, compat_simulator, {**archive, "redirect": False}),
                             "database_url": first.config["database_url"]}
            second = Gateway(tmp_path, second_config).start()
            try:
                served = second.client(token).videos.download_content(video_id).read()
            finally:
                second.stop()
            redirect = httpx.get(f"{first.url}/v1/videos/{video_id}/content",
                                 headers={"Authorization": f"Bearer {token}"})
        finally:
            first.stop()

        expected = expected_content(upstream_id, 40000)
        assert served == expected
        assert redirect.status_code == 302
        assert redirect.headers["etag"] == quoted_sha256(expected)
        assert httpx.get(redirect.headers["location"]).content == expected
        assert hashlib.sha256(served).hexdigest() in redirect.headers["etag"]


class TestUpgrade:
    def test_a_video_finished_before_the_archive_is_imported_from_the_old_copy(
            self, tmp_path: Path, sim: Simulator, compat_simulator: Simulator) -> None:
        config = _config(sim, compat_simulator, {})
        del config["archive"]
        config["content_store"] = {"dir": "./content"}
        gw = Gateway(tmp_path, config).start()
        video_id, upstream_id, token = Archived(gw, sim, None).finished(_tag("old"))
        wait_archive_state(gw, video_id)
        gw.stop()
        # The database as the release before the archive left it: the job completed, its
        # video copied to content_store.dir, and the upstream's link since gone.
        url = str(gw.config["database_url"])
        command.downgrade(alembic_config(url), "0008")
        old_copy = b"the copy the content store took" * 1000
        (tmp_path / "content" / f"{video_id}.mp4").write_bytes(old_copy)
        execute(url, f"UPDATE jobs SET content_file = '{video_id}.mp4' WHERE id = '{video_id}'")
        forget_upstream(sim, upstream_id)

        gw.start()  # migrates, and the archive takes the old copy in
        try:
            wait_archive_state(gw, video_id, timeout=30)
            assert gw.client(token).videos.download_content(video_id).read() == old_copy
        finally:
            gw.stop()


def admin_view_after_restart(gw: Gateway, video_id: str) -> str:
    """Start ``gw`` again and wait for the video it was archiving to be stored."""
    gw.start()
    return str(wait_archive_state(gw, video_id, timeout=30)["archive_state"])
