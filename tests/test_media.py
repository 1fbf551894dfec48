"""The pure checks behind uploads: images decoded whole, videos measured, JSON depth bounded."""

from __future__ import annotations

import io

import pytest

from gateway.errors import InvalidRequest
from gateway.videos.inputs import MAX_JSON_DEPTH, load_json
from gateway.videos.media import billed_seconds, check_image, probe_video
from tests.support.media import bomb_png, garbage_png, image_bytes, mp4, webm


class TestCheckImage:
    @pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                               ("WEBP", "image/webp")])
    def test_a_whole_image_of_the_size_passes(self, fmt: str, mime: str) -> None:
        assert check_image(image_bytes(72, 128, fmt), "72x128") == mime

    @pytest.mark.parametrize("data", [bomb_png(30000, 30000), bomb_png(10000, 10000),
                                      bomb_png(7000, 7000)], ids=["hard", "warned", "40mp"])
    def test_a_header_declaring_too_many_pixels_is_refused_undecoded(self, data: bytes) -> None:
        with pytest.raises(InvalidRequest, match="pixels") as refused:
            check_image(data, "720x1280")
        assert refused.value.param == "input_reference"

    @pytest.mark.parametrize("data", [garbage_png(72, 128), image_bytes(72, 128)[:-40],
                                      image_bytes(72, 128, "WEBP")[:60]],
                             ids=["garbage", "cut_png", "cut_webp"])
    def test_data_that_does_not_decode_is_refused(self, data: bytes) -> None:
        with pytest.raises(InvalidRequest, match="not a complete"):
            check_image(data, "72x128")


class TestProbeVideo:
    def test_length_and_type_come_from_the_container(self) -> None:
        facts = probe_video(io.BytesIO(mp4(8.0)))
        assert (facts.seconds, facts.content_type) == (8.0, "video/mp4")

    def test_a_webm_is_a_video_too(self) -> None:
        facts = probe_video(io.BytesIO(webm(6.5)))
        assert (facts.seconds, facts.content_type) == (6.5, "video/webm")

    def test_the_longest_video_track_counts_not_the_movie_header(self) -> None:
        assert probe_video(io.BytesIO(mp4(1.0, track_seconds=20.0))).seconds == 20.0

    def test_the_file_is_left_at_its_start_for_the_upload(self) -> None:
        file = io.BytesIO(mp4(4.0))
        probe_video(file)
        assert file.tell() == 0

    @pytest.mark.parametrize("data", [b"", b"text", image_bytes(64, 64), mp4(4.0)[:24]],
                             ids=["empty", "text", "png", "ftyp_only"])
    def test_what_is_not_a_video_is_refused(self, data: bytes) -> None:
        with pytest.raises(InvalidRequest) as refused:
            probe_video(io.BytesIO(data))
        assert refused.value.param == "video"

    def test_a_video_without_a_length_is_refused(self) -> None:
        with pytest.raises(InvalidRequest, match="length"):
            probe_video(io.BytesIO(mp4(0.0)))


class TestBilledSeconds:
    @pytest.mark.parametrize(("length", "billed"), [(0.04, 4), (4.0, 4), (4.1, 4), (4.11, 8),
                                                    (8.0, 8), (12.1, 12)])
    def test_the_shortest_offered_length_that_fits(self, length: float, billed: int) -> None:
        assert billed_seconds(length, [12, 4, 8], model="sora-2") == billed

    def test_longer_than_every_offered_length_is_refused(self) -> None:
        with pytest.raises(InvalidRequest, match="at most 12 s") as refused:
            billed_seconds(12.2, [4, 8, 12], model="sora-2")
        assert refused.value.param == "video"


class TestLoadJson:
    def test_nesting_up_to_the_bound_is_read(self) -> None:
        text = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
        assert load_json(text, "body", param=None) is not None

    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
    def test_deeper_nesting_is_refused(self, depth: int) -> None:
        with pytest.raises(InvalidRequest, match="nests more than"):
            load_json('{"a":' * depth + "1" + "}" * depth, "'metadata'", param="metadata")

    @pytest.mark.parametrize("text", ['{"a": ', b"\xff\xfe", ""])
    def test_malformed_json_is_refused(self, text: str | bytes) -> None:
        with pytest.raises(InvalidRequest, match="malformed JSON"):
            load_json(text, "The request body", param=None)
