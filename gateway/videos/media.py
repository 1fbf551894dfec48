"""Uploaded media checked for what it is before anything is held: images decoded whole,
videos measured from their container."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image
from pymediainfo import MediaInfo

from gateway.errors import InvalidRequest
from gateway.ledger.sizes import parse_size

IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# Pixels an image may declare before a byte of it is decoded: well above the largest size a
# model offers (an image must match the requested size anyway), far below what exhausts memory.
MAX_IMAGE_PIXELS = 40_000_000
# Pillow only warns about a header declaring 1-2x its own limit and raises past that; in this
# process both are the same refusal.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
# What Pillow's decoders raise on data that is not the image its header promised.
_UNDECODABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error)


def check_image(data: bytes, size: str, *, param: str = "input_reference") -> str:
    """Decode an image whole, its pixel count bounded first; return its real content type."""
    wanted = parse_size(size)
    try:
        with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as image:
            kind, (got_width, got_height) = image.format, image.size
            if got_width * got_height > MAX_IMAGE_PIXELS:
                raise InvalidRequest(
                    f"'{param}' declares {got_width}x{got_height} pixels, more than the "
                    f"{MAX_IMAGE_PIXELS // 1_000_000} MP an image may have.", param=param)
            # A tier (720p) names no aspect: vendors frame any image to it.
            if (wanted is not None and wanted.exact
                    and (got_width, got_height) != (wanted.width, wanted.height)):
                raise InvalidRequest(
                    f"'{param}' is {got_width}x{got_height} pixels; it must match size {size}.",
                    param=param)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidRequest(f"'{param}' declares more pixels than an image may have.",
                             param=param) from exc
    except _UNDECODABLE as exc:
        raise InvalidRequest(f"'{param}' is not a complete JPEG, PNG or WebP image.",
                             param=param) from exc
    assert kind in IMAGE_FORMATS
    return IMAGE_FORMATS[kind]


# -- videos ---------------------------------------------------------------------------------
# A clip this much longer than an offered length still counts as that length: containers
# round durations (a last frame's timestamp, an edit list) by a few hundredths of a second.
DURATION_SLACK_S = 0.1


@dataclass(frozen=True)
class VideoFacts:
    seconds: float
    content_type: str


def probe_video(file: BinaryIO, *, param: str = "video") -> VideoFacts:
    """What an uploaded file is, read from its container: a video we forward, and its length.

    The length is the longest video track's, not the movie header's, which a file can set to
    anything.
    """
    file.seek(0)
    try:
        info = MediaInfo.parse(file)
    finally:
        file.seek(0)
    general = info.general_tracks[0] if info.general_tracks else None
    content_type = _container_type(general)
    if content_type is None or not info.video_tracks:
        raise InvalidRequest(f"'{param}' must be an MP4, QuickTime or WebM video.", param=param)
    milliseconds = [float(track.duration) for track in info.video_tracks if track.duration]
    if not milliseconds and general is not None and general.duration:
        milliseconds = [float(general.duration)]
    if not milliseconds or max(milliseconds) <= 0:
        raise InvalidRequest(f"The length of '{param}' cannot be read from its container.",
                             param=param)
    return VideoFacts(seconds=max(milliseconds) / 1000, content_type=content_type)


def _container_type(general: Any) -> str | None:
    if general is None:
        return None
    if general.format == "MPEG-4":
        return "video/quicktime" if general.format_profile == "QuickTime" else "video/mp4"
    return "video/webm" if general.format == "WebM" else None


def billed_seconds(duration_s: float, offered: list[int], *, model: str,
                   param: str = "video") -> int:
    """The shortest length a model offers that a clip of ``duration_s`` fits in."""
    fitting = [seconds for seconds in sorted(offered) if duration_s <= seconds + DURATION_SLACK_S]
    if not fitting:
        raise InvalidRequest(
            f"'{param}' plays for {duration_s:.2f} s; model '{model}' takes videos of at most "
            f"{max(offered)} s.", param=param)
    return fitting[0]
