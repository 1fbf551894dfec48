"""Requests made from a video rather than a prompt alone: edits and extensions (of one of the
caller's videos or of an upload), remixes and characters, each parsed once into a typed
object before the service sees it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from gateway.config import Settings
from gateway.errors import InvalidRequest
from gateway.upstreams.base import VideoUpload
from gateway.videos.inputs import (
    parse_model,
    parse_prompt,
    parse_seconds,
    parse_size,
    video_reference,
    video_upload,
)

DeriveKind = Literal["edits", "extensions"]
MAX_NAME_CHARS = 200  # the stored column's length
# A length as plain digits; which lengths are offered is the source's model's to say.
_SECONDS = re.compile(r"[1-9][0-9]{0,5}")


@dataclass(frozen=True)
class DeriveParams:
    """An edit or an extension: of one of the caller's videos (``source_id``), or of an
    uploaded video (``upload``, with the ``model`` and ``size`` the client chose for it)."""

    kind: DeriveKind
    prompt: str
    source_id: str | None = None
    upload: VideoUpload | None = None
    model: str | None = None
    size: str | None = None
    # The seconds an extension adds; None for an edit, which is as long as its source.
    seconds: int | None = None


@dataclass(frozen=True)
class CharacterParams:
    name: str
    upload: VideoUpload


async def parse_derive(kind: DeriveKind, fields: dict[str, Any],
                       settings: Settings) -> DeriveParams:
    prompt = parse_prompt(fields, settings)
    upload = await video_upload(fields)
    if upload is None:
        source_id = video_reference(fields)
        # Checked against the source's model once the service has found it.
        seconds = _seconds_text(fields) if kind == "extensions" else None
        return DeriveParams(kind, prompt, source_id=source_id, seconds=seconds)
    model = parse_model(fields, settings)
    return DeriveParams(
        kind, prompt, upload=upload, model=model, size=parse_size(fields, settings, model),
        seconds=parse_seconds(fields, settings, model, default=None)
        if kind == "extensions" else None)


def _seconds_text(fields: dict[str, Any]) -> int:
    raw = fields.get("seconds")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not _SECONDS.fullmatch(raw):
        raise InvalidRequest("'seconds' (the seconds to add) is required: a whole number.",
                             param="seconds")
    return int(raw)


async def parse_character(fields: dict[str, Any]) -> CharacterParams:
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("'name' is required.", param="name")
    if len(name.strip()) > MAX_NAME_CHARS:
        # Checked before the upstream creates anything that could then not be recorded.
        raise InvalidRequest(f"'name' is longer than {MAX_NAME_CHARS} characters.",
                             param="name")
    upload = await video_upload(fields)
    if upload is None:
        raise InvalidRequest("'video' must be an uploaded video file.", param="video")
    return CharacterParams(name.strip(), upload)
