"""The native vendor simulators, driven over HTTP in each vendor's own protocol."""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib import import_module

import httpx
import pytest

from gateway.simulator import FLAVORS, SECRET_DETAIL, _directives, expected_content
from gateway.simulators import VENDOR_FLAVORS
from gateway.simulators.common import VendorJob, image_kind, redacted
from tests.support.servers import Simulator
from tests.support.vendors import (
    ARK_TASKS,
    DRIVERS,
    KEY,
    KLING_AK,
    KLING_SK,
    SIZE,
    VEO,
    WAN_CREATE,
    Driver,
    kling_jwt,
    png_base64,
    png_data_url,
)


@pytest.fixture(scope="module")
def drivers() -> Iterator[dict[str, Driver]]:
    """One simulator process per vendor for the whole module, each accepting one key."""
    sims = {flavor: Simulator(flavor=flavor, duration_s=0.5,
                              api_key=f"{KLING_AK}:{KLING_SK}" if flavor == "kling" else KEY)
            for flavor in VENDOR_FLAVORS}
    try:
        for sim in sims.values():
            sim.spawn()
        for sim in sims.values():
            sim.ready()
        drivers = {flavor: DRIVERS[flavor](sim) for flavor, sim in sims.items()}
        yield drivers
        for driver in drivers.values():
            driver.http.close()
    finally:
        for sim in sims.values():
            sim.stop()


@pytest.fixture(params=VENDOR_FLAVORS)
def driver(request: pytest.FixtureRequest, drivers: dict[str, Driver]) -> Driver:
    return drivers[request.param]


class TestCommon:
    def job(self, prompt: str = "", wall_s: float = 1.0) -> VendorJob:
        return VendorJob(id="j", model="m", prompt=prompt, key="k", seconds=5,
                         resolution="720p", wall_s=wall_s, content_size=1,
                         directives=_directives(prompt), body={}, created=100.0)

    def test_stages_follow_the_clock(self) -> None:
        job = self.job()
        stages = [job.stage(100.0 + t)[0] for t in (0.0, 0.07, 0.5, 1.0)]
        assert stages == ["created", "queued", "running", "succeeded"]
        assert job.stage(105.0) == ("succeeded", 101.0)
        assert self.job("[fail]").stage(102.0)[0] == "failed"
        assert self.job("[never]").stage(1e9)[0] == "running"

    def test_rendered_values_follow_directives(self) -> None:
        job = self.job("[render-seconds:3.5] [render-resolution:480p]")
        assert (job.rendered_seconds, job.rendered_resolution) == (3.5, "480p")
        assert (self.job().rendered_seconds, self.job().rendered_resolution) == (5.0, "720p")

    def test_image_kinds(self) -> None:
        assert image_kind("https://cdn.example/x.png") == "url"
        assert image_kind(png_data_url()) == "data_url"
        assert image_kind(png_base64()) == "base64"
        assert image_kind("data:image/PNG;base64," + png_base64()) is None
        assert image_kind("not base64!") is None
        assert image_kind(None) is None
        assert redacted({"images": ["x" * 300, "y"]}) == {"images": ["<300 chars>", "y"]}


def test_every_flavor_is_known() -> None:
    assert FLAVORS == ("openai", "compat", "ark", "dashscope", "kling", "gemini", "minimax",
                       "vidu")


class TestEveryVendor:
    @pytest.mark.parametrize("image", [False, True], ids=["text", "image"])
    def test_job_succeeds_and_its_bytes_download(self, driver: Driver, image: bool) -> None:
        # Long enough that a loaded machine still polls it before it is done.
        job_id = driver.start("a fox in the snow [duration:2]", image=image)
        assert driver.status(driver.poll(job_id).json()) != driver.done
        done = driver.wait(job_id)
        assert driver.status(done) == driver.done
        video = driver.download(driver.video_url(done))
        assert video.status_code == 200
        assert video.content == expected_content(job_id, SIZE)
        assert driver.sim.job(job_id)["has_input_reference"] is image

    def test_range_download(self, driver: Driver) -> None:
        job_id = driver.start("a ranged fox")
        video = driver.download(driver.video_url(driver.wait(job_id)), Range="bytes=100-199")
        assert video.status_code == 206
        assert video.headers["content-range"] == f"bytes 100-199/{SIZE}"
        assert video.content == expected_content(job_id, SIZE)[100:200]

    def test_fail_directive_ends_in_the_vendor_failure(self, driver: Driver) -> None:
        failed = driver.wait(driver.start("doomed [fail]"))
        assert driver.status(failed) == driver.failed_word

    def test_never_stays_running_until_finished(self, driver: Driver) -> None:
        job_id = driver.start("slow [never] [duration:0.05]")
        time.sleep(0.1)
        assert driver.sim.job(job_id)["stage"] == "running"
        assert not driver.finished(driver.poll(job_id).json())
        driver.sim.finish(job_id, "completed")
        assert driver.status(driver.poll(job_id).json()) == driver.done

    def test_faults_answer_in_the_vendor_shape(self, driver: Driver) -> None:
        driver.sim.faults(429, count=1)
        refused = driver.create("any")
        assert refused.status_code == 429
        assert SECRET_DETAIL in refused.text
        assert driver.create("any [size:16]").status_code == 200

    def test_status_directive_refuses_the_create(self, driver: Driver) -> None:
        assert driver.create("broken [status:503]").status_code == 503


@pytest.mark.parametrize("flavor", ["ark", "dashscope", "kling", "minimax", "vidu"])
def test_unknown_status_word_while_running(drivers: dict[str, Driver], flavor: str) -> None:
    driver = drivers[flavor]
    job_id = driver.start("odd [unknown-status] [never]")
    word = driver.status(driver.poll(job_id).json())
    assert word not in (driver.done, driver.failed_word)
    assert word == driver.sim.job(job_id)["status"]
    documented = import_module(f"gateway.simulators.{flavor}").SIMULATOR.words.values()
    assert word not in documented


def test_expire_url_kills_links_and_fresh_polls_renew_them(drivers: dict[str, Driver]) -> None:
    fixed = drivers["ark"]
    fresh = drivers["vidu"]
    ids = {name: drivers[name].start("short-lived [expire-url]") for name in ("ark", "vidu")}
    urls = {name: drivers[name].video_url(drivers[name].wait(ids[name])) for name in ids}
    assert fixed.download(urls["ark"]).status_code == 200
    time.sleep(2.2)
    for name, url in urls.items():
        gone = drivers[name].download(url)
        assert gone.status_code == 403
        assert b"Request has expired" in gone.content
    renewed = fresh.video_url(fresh.wait(ids["vidu"]))
    assert fresh.download(renewed).content == expected_content(ids["vidu"], SIZE)
    assert fixed.video_url(fixed.wait(ids["ark"])) == urls["ark"]


class TestArk:
    def test_result_reports_what_was_rendered(self, drivers: dict[str, Driver]) -> None:
        ark = drivers["ark"]
        done = ark.wait(ark.start("a heron --rs 480p --rt 9:16 --dur 7"))
        assert (done["resolution"], done["ratio"], done["duration"]) == ("480p", "9:16", 7)
        tokens = 480 * 864 * 24 * 7 // 1024
        assert done["usage"] == {"completion_tokens": tokens, "total_tokens": tokens}
        short = ark.wait(ark.start("a heron [render-seconds:3]", duration=5))
        assert short["duration"] == 3
        assert ark.sim.job(short["id"])["seconds"] == 5

    def test_refusals_are_ark_errors(self, drivers: dict[str, Driver]) -> None:
        ark = drivers["ark"]
        unauthorized = httpx.post(ark.sim.base_url + ARK_TASKS, json={})
        assert unauthorized.status_code == 401
        assert unauthorized.json()["error"]["code"] == "AuthenticationError"
        missing = ark.http.post(ARK_TASKS, json={"model": "doubao-seedance-1-0-lite-t2v"})
        assert missing.status_code == 400
        assert missing.json()["error"] | {"message": ""} == {
            "code": "MissingParameter", "message": "", "param": "content", "type": "BadRequest"}
        assert ark.create("too long", duration=99).json()["error"]["param"] == "duration"
        raw = [{"type": "image_url", "image_url": {"url": png_base64()}}]
        body = {"model": "doubao-seedance-1-0-lite-i2v", "content": raw}
        assert ark.http.post(ARK_TASKS, json=body).status_code == 400
        assert ark.create("x").status_code == 200
        rejected = ark.create("x [reject]").json()["error"]["code"]
        assert rejected == "InputTextSensitiveContentDetected"

    def test_delete_cancels_queued_refuses_running_deletes_finished(
            self, drivers: dict[str, Driver]) -> None:
        ark = drivers["ark"]
        queued = ark.start("later [duration:60]")
        assert ark.http.delete(f"{ARK_TASKS}/{queued}").status_code == 200
        assert ark.status(ark.poll(queued).json()) == "cancelled"
        running = ark.start("busy [never] [duration:0.01]")
        time.sleep(0.05)
        assert ark.http.delete(f"{ARK_TASKS}/{running}").status_code == 400
        finished = ark.start("done")
        ark.wait(finished)
        assert ark.http.delete(f"{ARK_TASKS}/{finished}").status_code == 200
        assert ark.poll(finished).status_code == 404
        assert ark.sim.stats()["deletes"][-1] == finished

    def test_last_frame_and_expired(self, drivers: dict[str, Driver]) -> None:
        ark = drivers["ark"]
        done = ark.wait(ark.start("framed", return_last_frame=True))
        frame = ark.download(done["content"]["last_frame_url"])
        assert frame.headers["content-type"] == "image/png"
        assert ark.status(ark.wait(ark.start("stale [expired]"))) == "expired"


class TestDashScope:
    def test_create_needs_the_async_header_and_a_key(self, drivers: dict[str, Driver]) -> None:
        wan = drivers["dashscope"]
        body = {"model": "wan2.5-t2v-preview", "input": {"prompt": "a koi"}}
        sync = wan.http.post(WAN_CREATE, json=body)
        assert (sync.status_code, sync.json()["code"]) == (403, "AccessDenied")
        keyless = httpx.post(wan.sim.base_url + WAN_CREATE, json=body,
                             headers={"X-DashScope-Async": "enable"})
        assert (keyless.status_code, keyless.json()["code"]) == (401, "InvalidApiKey")

    def test_bad_input_is_invalid_parameter(self, drivers: dict[str, Driver]) -> None:
        wan = drivers["dashscope"]
        body = {"model": "wan2.5-i2v-preview", "input": {"prompt": "a koi"}}
        no_image = wan.http.post(WAN_CREATE, json=body, headers={"X-DashScope-Async": "enable"})
        assert no_image.status_code == 400
        assert no_image.json()["code"] == "InvalidParameter"
        assert "img_url" in no_image.json()["message"]
        assert wan.create("a koi", duration=7).status_code == 400
        assert wan.create("a koi", size="1280x720").status_code == 400

    def test_usage_reports_what_was_rendered(self, drivers: dict[str, Driver]) -> None:
        wan = drivers["dashscope"]
        done = wan.wait(wan.start("a koi [render-seconds:5]", image=True, resolution="480P",
                                  duration=10))
        usage = done["usage"]
        assert (usage["duration"], usage["output_video_duration"]) == (5, 5)
        assert (usage["SR"], usage["size"], usage["video_count"]) == (480, "832*480", 1)
        assert done["output"]["end_time"] >= done["output"]["submit_time"]
        body = {"model": "wanx2.1-t2v-turbo", "input": {"prompt": f"a koi [size:{SIZE}]"},
                "parameters": {"size": "832*480"}}
        legacy = wan.http.post(WAN_CREATE, json=body, headers={"X-DashScope-Async": "enable"})
        old = wan.wait(wan.job_id(legacy))["usage"]
        assert old == {"video_duration": 5, "video_ratio": "832*480", "video_count": 1}

    def test_cancel_only_while_pending(self, drivers: dict[str, Driver]) -> None:
        wan = drivers["dashscope"]
        pending = wan.start("later [duration:60]")
        assert wan.http.post(f"/tasks/{pending}/cancel").status_code == 200
        assert wan.status(wan.poll(pending).json()) == "CANCELED"
        again = wan.http.post(f"/tasks/{pending}/cancel")
        assert (again.status_code, again.json()["code"]) == (400, "UnsupportedOperation")
        assert wan.status(wan.poll("no-such-task").json()) == "UNKNOWN"
        failed = wan.wait(wan.start("doomed [fail]"))["output"]
        assert failed["code"]
        assert failed["message"]


class TestKling:
    def refusal(self, kling: Driver, token: str) -> tuple[int, int]:
        answer = httpx.get(f"{kling.sim.base_url}/videos/text2video/1",
                           headers={"Authorization": f"Bearer {token}"} if token else {})
        return answer.status_code, answer.json()["code"]

    def test_jwt_is_verified(self, drivers: dict[str, Driver]) -> None:
        kling = drivers["kling"]
        assert self.refusal(kling, "") == (401, 1001)
        assert self.refusal(kling, kling_jwt(KLING_AK, "x" * 32)) == (401, 1002)
        assert self.refusal(kling, f"{KLING_AK}:{KLING_SK}") == (401, 1002)
        assert self.refusal(kling, kling_jwt(KLING_AK, KLING_SK, expires_in=-10)) == (401, 1004)
        assert self.refusal(kling, kling_jwt(KLING_AK, KLING_SK, not_before=60)) == (401, 1003)
        assert self.refusal(kling, kling_jwt("ak-stranger", KLING_SK)) == (401, 1000)
        job_id = kling.start("a crane")
        assert kling.sim.job(job_id)["key"] == KLING_AK

    def test_requests_are_checked(self, drivers: dict[str, Driver]) -> None:
        kling = drivers["kling"]
        prefixed = kling.http.post("/videos/image2video", json={"image": png_data_url()})
        assert (prefixed.status_code, prefixed.json()["code"]) == (400, 1201)
        assert kling.create("a crane", duration="7").json()["code"] == 1201
        assert kling.http.post("/videos/text2video", json={}).json()["code"] == 1201
        assert kling.create("a crane [reject]").json()["code"] == 1301

    def test_task_is_polled_under_its_kind(self, drivers: dict[str, Driver]) -> None:
        kling = drivers["kling"]
        job_id = kling.start("a crane")
        wrong = kling.http.get(f"/videos/image2video/{job_id}")
        assert (wrong.status_code, wrong.json()["code"]) == (404, 1203)

    def test_duration_rendered_is_reported(self, drivers: dict[str, Driver]) -> None:
        kling = drivers["kling"]
        done = kling.wait(kling.start("a crane [render-seconds:4.5]", duration="10"))
        video = done["data"]["task_result"]["videos"][0]
        assert video["duration"] == "4.5"
        assert kling.sim.job(done["data"]["task_id"])["seconds"] == 10


class TestGemini:
    def test_operation_lifecycle_and_keyed_download(self, drivers: dict[str, Driver]) -> None:
        veo = drivers["gemini"]
        name = veo.start("a lighthouse")
        assert name.startswith(f"models/{VEO}/operations/")
        assert veo.poll(name).json() == {"name": name}
        uri = veo.video_url(veo.wait(name))
        keyless = httpx.get(uri)
        assert (keyless.status_code, keyless.json()["error"]["status"]) == (
            403, "PERMISSION_DENIED")
        wrong = httpx.get(uri, headers={"x-goog-api-key": "not-the-key"})
        assert (wrong.status_code, wrong.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")
        redirect = httpx.get(uri, params={"key": KEY})
        assert redirect.status_code == 302
        assert httpx.get(redirect.headers["location"]).content == expected_content(name, SIZE)

    def test_refusals_are_google_errors(self, drivers: dict[str, Driver]) -> None:
        veo = drivers["gemini"]
        path = f"/models/{VEO}:predictLongRunning"
        keyless = httpx.post(veo.sim.base_url + path, json={})
        assert keyless.status_code == 403
        body = {"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 4}}
        too_short = veo.http.post("/models/veo-3.0-generate-001:predictLongRunning", json=body)
        assert too_short.json()["error"] | {"message": ""} == {
            "code": 400, "message": "", "status": "INVALID_ARGUMENT"}
        unknown = veo.http.post("/models/imagen-4:predictLongRunning", json=body)
        assert unknown.json()["error"]["status"] == "NOT_FOUND"

    def test_filtered_and_failed_operations(self, drivers: dict[str, Driver]) -> None:
        veo = drivers["gemini"]
        filtered = veo.wait(veo.start("risky [rai]"))
        result = filtered["response"]["generateVideoResponse"]
        assert result["raiMediaFilteredCount"] == 1
        assert "generatedSamples" not in result
        failed = veo.wait(veo.start("doomed [fail]"))
        assert failed["done"] is True
        assert failed["error"]["message"]

    def test_finish_accepts_the_short_operation_id(self, drivers: dict[str, Driver]) -> None:
        veo = drivers["gemini"]
        name = veo.start("slow [never]")
        veo.sim.finish(name.rsplit("/", 1)[1], "completed")
        assert veo.poll(name).json()["done"] is True


class TestMiniMax:
    def test_errors_come_in_base_resp(self, drivers: dict[str, Driver]) -> None:
        hailuo = drivers["minimax"]

        def code(answer: httpx.Response) -> tuple[int, int]:
            return answer.status_code, answer.json()["base_resp"]["status_code"]

        stranger = httpx.post(hailuo.sim.base_url + "/video_generation", json={},
                              headers={"Authorization": "Bearer sk-stranger"})
        assert code(stranger) == (200, 1004)
        no_image = hailuo.http.post("/video_generation", json={"model": "I2V-01", "prompt": "x"})
        assert code(no_image) == (200, 2013)
        assert code(hailuo.create("x", duration=10, resolution="1080P")) == (200, 2013)
        assert code(hailuo.create("x [reject]")) == (200, 1026)

    def test_pixels_rendered_and_fresh_file_links(self, drivers: dict[str, Driver]) -> None:
        hailuo = drivers["minimax"]
        done = hailuo.wait(hailuo.start("a tram [render-resolution:1080P]", resolution="768P"))
        assert (done["video_width"], done["video_height"]) == (1920, 1080)
        link = httpx.URL(hailuo.video_url(done))
        expires = int(link.params["Expires"]) / 1000
        assert time.time() + 3500 < expires < time.time() + 3700
        assert hailuo.download(str(link)).content == expected_content(done["task_id"], SIZE)


class TestVidu:
    def test_refusals_are_vidu_errors(self, drivers: dict[str, Driver]) -> None:
        vidu = drivers["vidu"]
        bearer = httpx.post(vidu.sim.base_url + "/text2video", json={},
                            headers={"Authorization": f"Bearer {KEY}"})
        assert (bearer.status_code, bearer.json()["reason"]) == (401, "Unauthorized")
        lacking = vidu.http.post("/text2video", json={"model": "viduq1"})
        assert (lacking.status_code, lacking.json()["reason"]) == (400, "FieldLacking")
        two = {"model": "viduq2", "images": [png_data_url(), png_data_url()]}
        assert vidu.http.post("/img2video", json=two).json()["reason"] == (
            "FieldItemCountOutOfRange")
        assert vidu.create("x", duration=8).json()["reason"] == "FieldInvalid"
        assert vidu.poll("404").json()["reason"] == "TaskNotFound"

    def test_echo_cover_and_cancel(self, drivers: dict[str, Driver]) -> None:
        vidu = drivers["vidu"]
        created = vidu.create(f"a kite [render-seconds:4] [size:{SIZE}]", duration=5).json()
        assert (created["state"], created["duration"], created["resolution"]) == (
            "created", 4, "1080p")
        done = vidu.wait(created["task_id"])
        cover = vidu.download(done["creations"][0]["cover_url"])
        assert cover.headers["content-type"] == "image/jpeg"
        assert done["credits"] > 0
        queued = vidu.start("later [duration:60]")
        assert vidu.http.post(f"/tasks/{queued}/cancel", json={"id": queued}).status_code == 200
        cancelled = vidu.poll(queued).json()
        assert (cancelled["state"], cancelled["err_code"]) == ("failed", "UserCancelled")
        late = vidu.http.post(f"/tasks/{done['id']}/cancel", json={"id": done["id"]})
        assert late.status_code == 400
