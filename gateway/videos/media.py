"""Uploaded media checked for what it is before anything is held: images decoded whole."""

from __future__ import annotations

import io
import struct
import warnings

from PIL import Image

from gateway.errors import InvalidRequest

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
    width, height = (int(part) for part in size.split("x"))
    try:
        with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as image:
            kind, (got_width, got_height) = image.format, image.size
            if got_width * got_height > MAX_IMAGE_PIXELS:
                raise InvalidRequest(
                    f"'{param}' declares {got_width}x{got_height} pixels, more than the "
                    f"{MAX_IMAGE_PIXELS // 1_000_000} MP an image may have.", param=param)
            if (got_width, got_height) != (width, height):
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
