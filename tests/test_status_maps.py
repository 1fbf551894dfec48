"""The pure parts of the native flavors: status words, the reading of a vendor's task, size
translation and metadata merging."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

import httpx
import pytest

from gateway.ledger.sizes import Size, parse_size
from gateway.upstreams import ark, dashscope, gemini, kling, minimax, native, vidu
from gateway.upstreams.auth import Bearer
from gateway.upstreams.flavor import CreateRequest, Image
from gateway.upstreams.http import UpstreamHTTP
from gateway.upstreams.outcome import Asset, Completed, Failed, Running, Unreachable
from gateway.upstreams.transport import UpstreamClient

MODULES: dict[str, ModuleType] = {"ark": ark, "dashscope": dashscope, "kling": kling,
                                  "gemini": gemini, "minimax": minimax, "vidu": vidu}
HTTP = UpstreamHTTP("simvendor", "https://api.vendor.example/v1",
                    UpstreamClient(httpx.Limits(max_connections=1)), 5.0, Bearer())


def size(text: str) -> Size:
    parsed = parse_size(text)
    assert parsed is not None
    return parsed


def request(text: str = "1280x720", **fields: object) -> CreateRequest:
    defaults: dict[str, object] = {"model": "m", "prompt": "p", "seconds": 5,
                                   "size": size(text), "size_text": text}
    return CreateRequest(**{**defaults, **fields})  # type: ignore[arg-type]


class TestStatusWords:
    @pytest.mark.parametrize(("flavor", "word", "ours"), [
        ("ark", "queued", "queued"), ("ark", "running", "in_progress"),
        ("ark", "succeeded", "completed"), ("ark", "failed", "failed"),
        ("ark", "cancelled", "failed"), ("ark", "expired", "failed"),
        ("dashscope", "PENDING", "queued"), ("dashscope", "RUNNING", "in_progress"),
        ("dashscope", "SUCCEEDED", "completed"), ("dashscope", "FAILED", "failed"),
        ("dashscope", "CANCELED", "failed"), ("dashscope", "UNKNOWN", "unknown"),
        ("kling", "submitted", "queued"), ("kling", "processing", "in_progress"),
        ("kling", "succeed", "completed"), ("kling", "failed", "failed"),
        ("minimax", "Preparing", "queued"), ("minimax", "Queueing", "queued"),
        ("minimax", "Processing", "in_progress"), ("minimax", "Success", "completed"),
        ("minimax", "Fail", "failed"),
        ("vidu", "created", "queued"), ("vidu", "queueing", "queued"),
        ("vidu", "processing", "in_progress"), ("vidu", "success", "completed"),
        ("vidu", "failed", "failed"),
    ])
    def test_documented_words(self, flavor: str, word: str, ours: str) -> None:
        assert native.status_of(MODULES[flavor].STATUSES, word) == ours

    @pytest.mark.parametrize("flavor", ["ark", "dashscope", "kling", "minimax", "vidu"])
    @pytest.mark.parametrize("word", ["scheduling", "", None, 7, {"nested": 1}])
    def test_unknown_empty_or_missing_is_running(self, flavor: str, word: object) -> None:
        assert native.status_of(MODULES[flavor].STATUSES, word) == "in_progress"

    @pytest.mark.parametrize("flavor", ["ark", "dashscope", "kling", "minimax", "vidu"])
    def test_every_word_the_simulator_speaks_is_mapped(self, flavor: str) -> None:
        words = import_module(f"gateway.simulators.{flavor}").SIMULATOR.words.values()
        assert {word.lower() for word in words} <= set(MODULES[flavor].STATUSES)


class TestArk:
    def test_sizes(self) -> None:
        assert ark.ratio(size("1280x720"), False) == "16:9"
        assert ark.ratio(size("720x1280"), True) == "9:16"
        assert ark.ratio(size("1024x1792"), False) == "9:16"
        assert ark.ratio(size("1080p"), False) == "16:9"
        assert ark.ratio(size("1080p"), True) == "adaptive"
        assert ark.body(request("480p"))["resolution"] == "480p"

    def test_the_audio_switch_only_where_the_model_has_one(self) -> None:
        assert ark.body(request(model="doubao-seedance-1-5-pro-251215"))["generate_audio"] is False
        assert ark.body(request(model="ep-20260101-abc", audio=True))["generate_audio"] is True
        assert "generate_audio" not in ark.body(request(model="doubao-seedance-1-0-pro-250528"))

    def test_images_take_their_roles(self) -> None:
        sent = ark.body(request(image=Image(data=b"x"),
                                metadata={"last_frame_url": "https://cdn.example/last.png"}))
        roles = [(item["type"], item.get("role")) for item in sent["content"]]
        assert roles == [("text", None), ("image_url", "first_frame"),
                         ("image_url", "last_frame")]
        assert sent["content"][1]["image_url"]["url"] == "data:image/png;base64,eA=="

    def test_reading_a_task(self) -> None:
        done = {"status": "succeeded", "updated_at": 1000, "frames": 121,
                "framespersecond": 24, "resolution": "720p", "generate_audio": True,
                "content": {"video_url": "https://v/1.mp4", "last_frame_url": "https://v/1.png"}}
        read = ark.outcome(HTTP, "cgt-1", done)
        assert read == Completed(
            assets=(Asset("video", "https://v/1.mp4", 87400.0),
                    Asset("thumbnail", "https://v/1.png", 87400.0)),
            seconds=5.042, size="720p", audio=True, completed_at=1000.0, expires_at=87400.0)
        assert ark.outcome(HTTP, "cgt-1", {"status": "queued"}) == Running("queued")
        assert isinstance(ark.outcome(HTTP, "cgt-1", {"status": "succeeded"}), Unreachable)
        cancelled = ark.outcome(HTTP, "cgt-1", {"status": "cancelled", "error": None})
        assert cancelled == Failed("upstream_failed", "The task was cancelled.",
                                   "cancelled: The task was cancelled.")

    def test_failure_words_are_sanitized(self) -> None:
        task = {"status": "failed", "error": {
            "code": "OutputVideoSensitiveContentDetected",
            "message": "task cgt-9 at api.vendor.example: output may be sensitive"}}
        failed = ark.outcome(HTTP, "cgt-9", task)
        assert isinstance(failed, Failed)
        assert failed.code == "moderation_blocked"
        assert failed.message is not None
        assert "cgt-9" not in failed.message
        assert "vendor.example" not in failed.message
        assert failed.raw is not None
        assert "cgt-9" in failed.raw


class TestDashScope:
    def test_sizes(self) -> None:
        assert dashscope.size_parameters(size("1280x720"), False) == {"size": "1280*720"}
        assert dashscope.size_parameters(size("480p"), False) == {"size": "832*480"}
        assert dashscope.size_parameters(size("1280x720"), True) == {"resolution": "720P"}
        assert dashscope.size_parameters(size("1440p"), False) == {"resolution": "1440P"}

    def test_the_audio_switch_only_where_the_model_has_one(self) -> None:
        assert dashscope.body(request(model="wan2.5-t2v-preview"))["parameters"]["audio"] is False
        assert "audio" not in dashscope.body(request(model="wan2.2-t2v-plus"))["parameters"]

    def test_image_task_and_fields(self) -> None:
        sent = dashscope.body(request(model="wan2.2-kf2v-flash", image=Image(data=b"x"),
                                      metadata={"last_frame_url": "https://c/l.png",
                                                "seed": 1, "input": {}}))
        assert set(sent["input"]) == {"prompt", "first_frame_url", "last_frame_url"}
        assert sent["parameters"] == {"seed": 1, "resolution": "720P", "duration": 5}

    def test_reading_a_task(self) -> None:
        older = {"output": {"task_status": "SUCCEEDED", "video_url": "https://v/w.mp4"},
                 "usage": {"video_duration": 5, "video_ratio": "832*480", "video_count": 1}}
        assert dashscope.outcome(HTTP, "t", older) == Completed(
            assets=(Asset("video", "https://v/w.mp4"),), seconds=5.0, size="832x480")
        gone = {"output": {"task_id": "t", "task_status": "UNKNOWN"}}
        assert isinstance(dashscope.outcome(HTTP, "t", gone), Unreachable)
        assert dashscope.outcome(HTTP, "t", {"output": {}}) == Running()


class TestKling:
    def test_sizes_and_fields(self) -> None:
        assert kling.mode(size("1920x1080")) == "pro"
        assert kling.mode(size("720p")) == "std"
        kind, sent = kling.body(request("1080x1920", metadata={"watermark": "false"}))
        assert kind == "text2video"
        assert (sent["aspect_ratio"], sent["mode"], sent["duration"]) == ("9:16", "pro", "5")
        assert sent["watermark_info"] == {"enabled": False}
        kind, sent = kling.body(request(image=Image(data=b"x")))
        assert (kind, sent["image"]) == ("image2video", "eA==")
        assert "aspect_ratio" not in sent
        assert kling.kling_image("https://c/i.png") == "https://c/i.png"

    def test_reading_a_task(self) -> None:
        data = {"task_status": "succeed", "updated_at": 2_000_000,
                "task_result": {"videos": [{"url": "https://v/k.mp4", "duration": "10"}]}}
        done = kling.outcome(HTTP, "k", {"code": 0, "data": data})
        assert isinstance(done, Completed)
        assert (done.seconds, done.completed_at) == (10.0, 2000.0)
        assert isinstance(kling.outcome(HTTP, "k", {"code": 1203, "data": {}}), Unreachable)


class TestGemini:
    def test_sizes_and_names(self) -> None:
        assert gemini.aspect_ratio(size("720x1280")) == "9:16"
        assert gemini.aspect_ratio(size("1080p")) == "16:9"
        assert gemini.resolution(size("3840x2160")) == "4k"
        assert gemini.camel("negative_prompt") == "negativePrompt"
        assert gemini.camel("seed") == "seed"

    def test_body_in_camel_case_and_never_over_priced(self) -> None:
        sent = gemini.body(request(metadata={"negative_prompt": "blur",
                                             "duration_seconds": 99, "sample_count": 4}), HTTP)
        assert sent["parameters"] == {"negativePrompt": "blur", "aspectRatio": "16:9",
                                      "durationSeconds": 5, "resolution": "720p"}

    def test_reading_an_operation(self) -> None:
        assert gemini.outcome(HTTP, "op", {"name": "op"}) == Running()
        failed = gemini.outcome(HTTP, "op", {"done": True, "error": {"code": 13,
                                                                     "message": "failed"}})
        assert isinstance(failed, Failed)
        filtered = {"done": True, "response": {"generateVideoResponse": {
            "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["unsafe content"]}}}
        assert gemini.outcome(HTTP, "op", filtered).code == "moderation_blocked"  # type: ignore[union-attr]
        empty = gemini.outcome(HTTP, "op", {"done": True, "response": {}})
        assert isinstance(empty, Failed)

    def test_sound_follows_the_model(self) -> None:
        done = {"done": True, "response": {"generateVideoResponse": {
            "generatedSamples": [{"video": {"uri": "https://g/files/f:download"}}]}}}
        assert gemini.outcome(HTTP, "models/veo-3.0-generate-001/operations/a", done) == \
            Completed(assets=(Asset("video", "https://g/files/f:download"),), audio=True)
        veo2 = gemini.outcome(HTTP, "models/veo-2.0-generate-001/operations/a", done)
        assert isinstance(veo2, Completed)
        assert veo2.audio is False
        assert gemini.makes_sound("operations/a") is None

    def test_error_reader_prefers_the_reason(self) -> None:
        body = {"error": {"code": 400, "message": "API key not valid.",
                          "status": "INVALID_ARGUMENT",
                          "details": [{"reason": "API_KEY_INVALID"}]}}
        assert gemini.read_error(body) == ("API key not valid.", "API_KEY_INVALID", None)


class TestMiniMax:
    def test_base_resp_codes(self) -> None:
        assert minimax.status_code({"base_resp": {"status_code": 1026}}) == 1026
        assert minimax.status_code({"base_resp": {"status_code": "0"}}) == 0
        assert minimax.status_code({"task_id": "1"}) == 0
        assert minimax.status_code({"base_resp": {"status_code": "x"}}) == -1

    def test_reading_a_task(self) -> None:
        done = minimax.outcome(HTTP, "1", {"status": "Success", "file_id": "77",
                                           "video_width": 1366, "video_height": 768,
                                           "base_resp": {"status_code": 0}}, HTTP.base_url)
        assert done == Completed(
            assets=(Asset("video", f"{HTTP.base_url}/files/retrieve?file_id=77"),),
            size="1366x768")
        failed = minimax.outcome(HTTP, "1", {"status": "Fail", "base_resp": {
            "status_code": 1027, "status_msg": "output video sensitive"}}, HTTP.base_url)
        assert isinstance(failed, Failed)
        assert failed.code == "moderation_blocked"
        limited = {"status": "", "base_resp": {"status_code": 1002}}
        assert isinstance(minimax.outcome(HTTP, "1", limited, HTTP.base_url), Unreachable)

    def test_metadata_renamed(self) -> None:
        sent = minimax.body(request("768p", metadata={"watermark": True, "prompt_extend": True}))
        assert (sent["aigc_watermark"], sent["prompt_optimizer"]) == (True, True)
        assert sent["resolution"] == "768P"


class TestVidu:
    def test_paths_and_sizes(self) -> None:
        path, sent = vidu.body(request("720x1280"))
        assert (path, sent["aspect_ratio"], sent["resolution"]) == ("/text2video", "9:16", "720p")
        path, sent = vidu.body(request(metadata={"img_url": "https://c/i.png"}))
        assert (path, sent["images"]) == ("/img2video", ["https://c/i.png"])
        assert "img_url" not in sent

    def test_what_the_create_promised_is_reported(self) -> None:
        kept = vidu.promised({"task_id": "1", "duration": 4, "resolution": "1080p"})
        assert kept == {"seconds": "4", "resolution": "1080p"}
        done = vidu.outcome(HTTP, "1", {"state": "success", "creations": [
            {"url": "https://v/1.mp4", "cover_url": "https://v/1.jpg"}]}, kept)
        assert done == Completed(assets=(Asset("video", "https://v/1.mp4"),
                                         Asset("thumbnail", "https://v/1.jpg")),
                                 seconds=4.0, size="1080p")


class TestNative:
    def test_merged_never_over_own_priced_or_reserved(self) -> None:
        metadata = {"seed": 1, "duration": 99, "seconds": 99, "content": [], "wm": True}
        merged = native.merged(metadata, {"duration": 5}, priced={"duration"},
                               reserved={"content"}, rename={"wm": "watermark",
                                                             "seed": "duration"})
        assert merged == {"watermark": True, "duration": 5}

    def test_readers(self) -> None:
        assert native.number("5") == 5.0
        assert native.number(True) is None
        assert native.number("-1") is None
        assert native.number(float("nan")) is None
        assert native.flag("TRUE") is True
        assert native.flag(None) is None
        assert native.rendered_size("1280*720") == "1280x720"
        assert native.rendered_size("nonsense") is None
        assert native.field({"a": [1]}, "a", "b") is None
        assert native.inline("data:image/PNG;base64,eA==") == ("image/png", "eA==")
        assert native.inline("https://c/i.png") is None

    def test_same_origin(self) -> None:
        assert native.same_origin("https://a.example/x", "https://a.example/v1")
        assert not native.same_origin("https://cdn.example/x", "https://a.example/v1")
        assert not native.same_origin("http://a.example/x", "https://a.example/v1")
        assert not native.same_origin("https://a.example:8443/x", "https://a.example/v1")
