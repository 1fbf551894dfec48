"""Reading create/edit requests as the SDK sends them (multipart) and as others do (JSON)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from gateway.config import Settings
from gateway.errors import InvalidRequest
from gateway.ledger.sizes import offered as offered_size
from gateway.upstreams.base import ImageFile, VideoUpload
from gateway.videos.media import check_image, probe_video

DEFAULT_MODEL = "sora-2"
DEFAULT_SECONDS = "4"
DEFAULT_SIZE = "720x1280"
# Sizes a model accepts when it is priced only per call (no per-second table lists them).
STANDARD_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
MAX_SIZE_CHARS = 20  # the stored column's length
MAX_FIELDS = 50
# Deeper than any field of this API nests, shallow enough that nothing recursing over a parsed
# body (the checks here, the database driver, an upstream's encoder) runs out of stack.
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class CreateParams:
    prompt: str
    model: str
    seconds: int
    size: str
    metadata: str | None
    image: ImageFile | None
    image_reference: dict[str, str] | None


async def read_body(request: Request) -> dict[str, Any]:
    """The request's fields as a dict; multipart nested keys (``a[b]``) become dicts."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        body = load_json(await request.body(), "The request body", param=None)
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        _check_text(body, None)
        return body
    if content_type == "multipart/form-data":
        return _form_fields(await _multipart(request))
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = await request.form(max_files=0, max_fields=MAX_FIELDS)
        except (MultiPartException, HTTPException) as exc:
            raise InvalidRequest("Malformed form body.") from exc
        fields = _form_fields(form)
        _check_text(fields, None)
        return fields
    raise InvalidRequest(
        "Send the request as multipart/form-data or application/json.", code="invalid_request"
    )


class _StrictMultiPartParser(MultiPartParser):
    """Starlette's parser, but a text part that is not UTF-8 is an error, not latin-1."""

    # A file part stays in memory up to this size, then goes to a temporary file. At
    # Starlette's 1 MiB a typical reference image (read whole right after) went to disk, each
    # 64 KiB of it written and read back through a worker thread.
    spool_max_size = 4 * 1024 * 1024

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                _check_text(bytes(part.data).decode("utf-8"), part.field_name)
            except UnicodeDecodeError:
                raise InvalidRequest(f"'{part.field_name}' is not valid UTF-8 text.",
                                     param=part.field_name) from None
        super().on_part_end()


async def _multipart(request: Request) -> FormData:
    # Parts are bounded by the request-size limit the middleware already enforces.
    limit = request.app.state.ctx.settings.max_upload_bytes
    parser = _StrictMultiPartParser(request.headers, request.stream(), max_files=4,
                                    max_fields=MAX_FIELDS, max_part_size=limit)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"Malformed multipart body: {exc.message}") from exc


def load_json(text: str | bytes, name: str, *, param: str | None) -> Any:
    """Client JSON, parsed; malformed or too deeply nested JSON is refused, naming ``name``."""
    try:
        value = json.loads(text)
    except RecursionError:
        too_deep = True  # refused below, once the exhausted stack has unwound
    except ValueError as exc:  # UnicodeDecodeError included
        raise InvalidRequest(f"{name} is malformed JSON.", param=param) from exc
    else:
        too_deep = _nesting(value) > MAX_JSON_DEPTH
    if too_deep:
        raise InvalidRequest(f"{name} is malformed JSON: it nests more than {MAX_JSON_DEPTH} "
                             "levels deep.", param=param)
    return value


def _nesting(value: Any) -> int:
    """How deep arrays and objects nest in ``value``, counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack and deepest <= MAX_JSON_DEPTH:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_text(value: Any, param: str | None) -> None:
    """Refuse text no database or upstream can store: NUL, or code points that are not UTF-8."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, param)
            _check_text(item, f"{param}.{key}" if param else str(key))
    elif isinstance(value, list):
        for item in value:
            _check_text(item, param)
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"'{param}' is not valid UTF-8 text.", param=param) from None
        if "\x00" in value:
            raise InvalidRequest(f"'{param}' contains a NUL character.", param=param)


def _form_fields(form: FormData) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if "[" in key and key.endswith("]"):
            outer, inner = key[:-1].split("[", 1)
            nested = fields.setdefault(outer, {})
            if isinstance(nested, dict):
                nested[inner] = value
            continue
        fields[key] = value
    return fields


def _text(fields: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = fields.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f"'{name}' must be a string.", param=name)
    return str(value).strip()


def _prompt(fields: dict[str, Any], settings: Settings) -> str:
    prompt = _text(fields, "prompt")
    if not prompt:
        raise InvalidRequest("'prompt' is required and must not be empty.", param="prompt")
    if len(prompt) > settings.max_prompt_chars:
        raise InvalidRequest(
            f"'prompt' is longer than {settings.max_prompt_chars} characters.", param="prompt"
        )
    return prompt


def parse_model(fields: dict[str, Any], settings: Settings) -> str:
    model = _text(fields, "model", DEFAULT_MODEL) or DEFAULT_MODEL
    if model not in settings.known_models:
        raise InvalidRequest(f"Unknown model '{model}'.", param="model")
    return model


def parse_seconds(fields: dict[str, Any], settings: Settings, model: str,
                  default: str | None = DEFAULT_SECONDS) -> int:
    offered = settings.seconds_for(model)
    if default is not None and int(default) not in offered:
        # OpenAI's 4 s is not every model's: the shortest it renders, sent to it explicitly.
        default = str(min(offered))
    return offered_seconds(settings, model, fields.get("seconds", default))


def offered_seconds(settings: Settings, model: str, raw: object) -> int:
    """``raw`` as one of the model's lengths, or a 400 that lists them."""
    offered = settings.seconds_for(model)
    if isinstance(raw, int) and not isinstance(raw, bool):  # a JSON number
        raw = str(raw)
    # Only the exact text of an offered length: Python reads "04", " 4" and Arabic-Indic or
    # full-width digits as 4 too, and a length that only looks like one is not one.
    if not isinstance(raw, str) or raw not in {str(length) for length in offered}:
        raise InvalidRequest(
            f"'seconds' must be one of {', '.join(map(str, offered))} for model '{model}'.",
            param="seconds",
        )
    return int(raw)


def parse_size(fields: dict[str, Any], settings: Settings, model: str) -> str:
    """The size as the client wrote it (``WxH``, ``W*H`` or a tier), if the model offers it."""
    table = settings.pricing.per_second.get(model)
    offered = list(table) if table else list(STANDARD_SIZES)
    rates = table or dict.fromkeys(STANDARD_SIZES, Decimal(0))
    # OpenAI's default, unless the model does not offer it (a 1080p-only vendor model).
    default = DEFAULT_SIZE if offered_size(rates, DEFAULT_SIZE) else offered[0]
    size = _text(fields, "size", default) or default
    if len(size) > MAX_SIZE_CHARS or offered_size(rates, size) is None:
        raise InvalidRequest(
            f"Size '{size}' is not offered for model '{model}'; choose one of "
            f"{', '.join(offered)}.",
            param="size",
        )
    return size


def _metadata(fields: dict[str, Any]) -> str | None:
    value = fields.get("metadata")
    if value is None:
        return None
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, str) and isinstance(load_json(value, "'metadata'", param="metadata"),
                                             dict):
        return value
    raise InvalidRequest("'metadata' must be a JSON object.", param="metadata")


def _data_url(url: str, param: str) -> bytes:
    header, _, payload = url.partition(",")
    name = f"'{param}.image_url'" if param == "input_reference" else f"The image in '{param}'"
    if ";base64" not in header:
        raise InvalidRequest(f"{name} data URLs must be base64.", param=param)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{name} is not valid base64.", param=param) from exc


async def _decoded(data: bytes, size: str, param: str = "input_reference") -> str:
    # Decoding takes milliseconds of CPU per image (Pillow lets go of the GIL meanwhile): off
    # the event loop, so the polls in flight are not kept waiting.
    return await asyncio.to_thread(check_image, data, size, param=param)


Reference = tuple[ImageFile | None, dict[str, str] | None]


async def image_reference(url: object, size: str, *,
                          param: str = "input_reference") -> Reference | None:
    """An input reference given by URL: a ``data:`` URL decoded and checked against ``size``,
    an http(s) URL passed on for the upstream to fetch. None if ``url`` is neither."""
    if isinstance(url, str) and url.startswith("data:"):
        data = _data_url(url, param)
        content_type = await _decoded(data, size, param)
        return ImageFile(data, "input_reference", content_type), None
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return None, {"image_url": url}
    return None


async def _reference(fields: dict[str, Any], size: str) -> Reference:
    value = fields.get("input_reference")
    if value is None or value == "":
        return None, None
    if isinstance(value, UploadFile):
        data = await value.read()
        content_type = await _decoded(data, size)
        return ImageFile(data, value.filename or "input_reference", content_type), None
    if isinstance(value, dict):
        if isinstance(value.get("file_id"), str) and value["file_id"]:
            return None, {"file_id": value["file_id"]}
        if (reference := await image_reference(value.get("image_url"), size)) is not None:
            return reference
    raise InvalidRequest(
        "'input_reference' must be an image file, {\"image_url\": ...} or {\"file_id\": ...}.",
        param="input_reference",
    )


async def parse_create(fields: dict[str, Any], settings: Settings) -> CreateParams:
    prompt = _prompt(fields, settings)
    model = parse_model(fields, settings)
    size = parse_size(fields, settings, model)
    seconds = parse_seconds(fields, settings, model)
    metadata = _metadata(fields)
    image, reference = await _reference(fields, size)
    return CreateParams(prompt=prompt, model=model, seconds=seconds, size=size,
                        metadata=metadata, image=image, image_reference=reference)


def parse_prompt(fields: dict[str, Any], settings: Settings) -> str:
    return _prompt(fields, settings)


def video_reference(fields: dict[str, Any]) -> str:
    """The id of an existing video named by an edit or extension (``video[id]`` or JSON)."""
    value = fields.get("video")
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    if isinstance(value, str) and value.startswith("video_"):
        return value
    raise InvalidRequest(
        "'video' must reference one of your videos as {\"id\": \"video_...\"}.", param="video"
    )


async def video_upload(fields: dict[str, Any], name: str = "video") -> VideoUpload | None:
    """An uploaded source video, measured from its container, streamed on from the spool."""
    value = fields.get(name)
    if not isinstance(value, UploadFile):
        return None
    # MediaInfo reads the spooled file (from disk past a few MB): off the event loop.
    facts = await asyncio.to_thread(probe_video, value.file, param=name)
    return VideoUpload(value.file, value.filename or "video.mp4", facts.content_type,
                       facts.seconds)
