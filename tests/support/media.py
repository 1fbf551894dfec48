"""Media files built byte by byte: real images, hostile images and small MP4s of known length."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_data(width: int, height: int, image_data: bytes) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with any IDAT payload."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", image_data)
            + _png_chunk(b"IEND", b""))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A few hundred bytes whose header asks a decoder for ``width * height`` pixels."""
    return png_with_data(width, height, zlib.compress(b"\x00" * 1024))


def garbage_png(width: int, height: int) -> bytes:
    """A valid header of the right size, then data no decoder can make pixels of."""
    return png_with_data(width, height, os.urandom(4096))


# -- MP4 (ISO base media) -------------------------------------------------------------------
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", flags), *parts)  # version 0


def _sample_table(ticks: int, width: int, height: int) -> bytes:
    avc1 = _box(b"avc1", b"\x00" * 6, struct.pack(">H", 1), b"\x00" * 16,
                struct.pack(">HHIIIH", width, height, 0x480000, 0x480000, 0, 1),
                b"\x00" * 32, struct.pack(">Hh", 0x18, -1))
    return _box(b"stbl",
                _full_box(b"stsd", 0, struct.pack(">I", 1), avc1),
                _full_box(b"stts", 0, struct.pack(">III", 1, 1, ticks)),
                _full_box(b"stsc", 0, struct.pack(">IIII", 1, 1, 1, 1)),
                _full_box(b"stsz", 0, struct.pack(">III", 0, 1, 16)),
                _full_box(b"stco", 0, struct.pack(">II", 1, 0)))


def _video_track(ticks: int, timescale: int, width: int, height: int) -> bytes:
    tkhd = _full_box(b"tkhd", 3, struct.pack(">IIIII", 0, 0, 1, 0, ticks), b"\x00" * 16,
                     _MATRIX, struct.pack(">II", width << 16, height << 16))
    mdhd = _full_box(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, timescale, ticks, 0x55C4, 0))
    hdlr = _full_box(b"hdlr", 0, struct.pack(">I", 0), b"vide", b"\x00" * 12,
                     b"VideoHandler\x00")
    dinf = _box(b"dinf", _full_box(b"dref", 0, struct.pack(">I", 1), _full_box(b"url ", 1)))
    minf = _box(b"minf", _full_box(b"vmhd", 1, b"\x00" * 8), dinf,
                _sample_table(ticks, width, height))
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


def mp4(seconds: float, *, track_seconds: float | None = None, padding: int = 0,
        width: int = 64, height: int = 64, timescale: int = 1000) -> bytes:
    """A small MP4: one video track of ``track_seconds`` (default ``seconds``), a movie header
    saying ``seconds``, and ``padding`` bytes of media data."""
    movie_ticks = round(seconds * timescale)
    track_ticks = round((seconds if track_seconds is None else track_seconds) * timescale)
    mvhd = _full_box(b"mvhd", 0, struct.pack(">IIII", 0, 0, timescale, movie_ticks),
                     struct.pack(">IH", 0x10000, 0x100), b"\x00" * 10, _MATRIX, b"\x00" * 24,
                     struct.pack(">I", 2))
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    moov = _box(b"moov", mvhd, _video_track(track_ticks, timescale, width, height))
    return ftyp + moov + _box(b"mdat", b"\x00" * (16 + padding))


# -- WebM (Matroska) ------------------------------------------------------------------------
def _element(element_id: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return element_id + b"\x01" + len(payload).to_bytes(7, "big") + payload  # 8-byte size


def _uint(element_id: bytes, value: int, width: int = 1) -> bytes:
    return _element(element_id, value.to_bytes(width, "big"))


def webm(seconds: float, *, width: int = 64, height: int = 64) -> bytes:
    """A WebM header: one VP8 video track, a segment of ``seconds``, no frames."""
    header = _element(b"\x1a\x45\xdf\xa3", _uint(b"\x42\x86", 1), _uint(b"\x42\xf7", 1),
                      _uint(b"\x42\xf2", 4), _uint(b"\x42\xf3", 8),
                      _element(b"\x42\x82", b"webm"), _uint(b"\x42\x87", 2),
                      _uint(b"\x42\x85", 2))
    info = _element(b"\x15\x49\xa9\x66", _uint(b"\x2a\xd7\xb1", 1_000_000, 4),
                    _element(b"\x44\x89", struct.pack(">d", seconds * 1000)))  # milliseconds
    picture = _element(b"\xe0", _uint(b"\xb0", width, 2), _uint(b"\xba", height, 2))
    track = _element(b"\xae", _uint(b"\xd7", 1), _uint(b"\x73\xc5", 1, 4), _uint(b"\x83", 1),
                     _element(b"\x86", b"V_VP8"), picture)
    return header + _element(b"\x18\x53\x80\x67", info, _element(b"\x16\x54\xae\x6b", track))
