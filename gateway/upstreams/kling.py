"""Kling's video API (flavor ``kling``).

Followed: Kling AI API reference (app.klingai.com/global/dev/document-api): "General
Information" (the API domain, the HS256 JWT minted from AccessKey/SecretKey, the error codes)
and "Video Generation - Text to Video / Image to Video" (the create and query-task calls, the
request fields, ``task_result.videos``); QuantumNous/new-api relay/channel/task/kling/adaptor.go
(the payload, duration as a string, mode, the JWT claims, the status words).

Translation::

    model, prompt   -> model_name, prompt
    seconds         -> duration, always, as the string Kling takes ("5", "10")
    size            -> mode (pro renders 1080p, std 720p: the tier of the short side) and, for
                       text-to-video, aspect_ratio (Kling's nearest of 16:9, 9:16, 1:1; a bare
                       tier, 16:9). Image-to-video takes its shape from the image.
    image           -> image, as Kling takes it: an https URL or bare base64 (no data: prefix);
                       metadata img_url/first_frame_url and last_frame_url (image_tail) too.
                       Any image makes the task an image2video one, and the kind is kept with
                       the job: a task is only found again under its own kind.
    audio           -> sound "on"/"off", always (Kling v2.6 makes sound when asked)
    metadata        -> top-level fields (negative_prompt, cfg_scale, camera_control, …);
                       watermark -> watermark_info {enabled}

Result: ``data.task_result.videos[0].url`` (public, signed for 30 days), with the duration
rendered. Kling has no cancel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from gateway.ledger.sizes import Size
from gateway.upstreams.auth import KlingJWT
from gateway.upstreams.base import (
    UpstreamAmbiguous,
    UpstreamError,
    UpstreamRefused,
    UpstreamUnavailable,
)
from gateway.upstreams.flavor import AUDIO, CREATE, IMAGE, CreateRequest, Flavor, Submitted
from gateway.upstreams.http import UpstreamHTTP
from gateway.upstreams.native import (
    COMPLETED,
    FAILED,
    IMAGE_KEYS,
    IN_PROGRESS,
    QUEUED,
    SignedLinks,
    failure,
    field,
    first,
    first_frame,
    flag,
    inline,
    last_frame,
    merged,
    nearest_ratio,
    number,
    running,
    status_of,
    text,
)
from gateway.upstreams.outcome import Asset, Completed, PollOutcome, Unreachable
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient

TEXT, IMAGE_KIND = "text2video", "image2video"
STATUSES = {"submitted": QUEUED, "processing": IN_PROGRESS, "succeed": COMPLETED,
            "failed": FAILED}
RATIOS = ("16:9", "9:16", "1:1")
PRICED = frozenset({"model_name", "model", "duration", "mode", "aspect_ratio", "sound", "n"})
RESERVED = frozenset({"prompt", "image", "image_tail", "callback_url", "external_task_id",
                      "watermark_info", *IMAGE_KEYS})
# Kling's codes for a request at fault (parameters, content policy); others are ours or its.
_REFUSED_CODES = frozenset({*range(1200, 1300), 1300, 1301})
LINK_TTL_S = 30 * 24 * 3600.0

AUTH = KlingJWT


def read_error(body: Any) -> tuple[str | None, str | None, str | None]:
    """``{"code": <number>, "message", "request_id"}``."""
    return text(field(body, "message")), text(field(body, "code")), None


ERRORS = read_error


def mode(size: Size) -> str:
    return "pro" if size.short >= 1080 else "std"


def kling_image(image: str) -> str:
    """Kling takes an image as a URL or as bare base64."""
    found = inline(image)
    return found[1] if found else image


def body(request: CreateRequest) -> tuple[str, dict[str, Any]]:
    """(task kind, body)."""
    lead, tail = first_frame(request), last_frame(request)
    own: dict[str, object] = {"model_name": request.model, "prompt": request.prompt,
                              "duration": str(request.seconds), "mode": mode(request.size),
                              "sound": "on" if request.audio else "off"}
    if lead:
        own["image"] = kling_image(lead)
    if tail:
        own["image_tail"] = kling_image(tail)
    kind = IMAGE_KIND if lead or tail else TEXT
    if kind == TEXT:
        own["aspect_ratio"] = nearest_ratio(request.size, RATIOS) or "16:9"
    metadata = dict(request.metadata)
    if "watermark" in metadata:
        asked = metadata.pop("watermark")
        enabled = flag(asked)
        own["watermark_info"] = {"enabled": bool(asked) if enabled is None else enabled}
    return kind, merged(metadata, own, priced=PRICED, reserved=RESERVED)


def outcome(http: UpstreamHTTP, upstream_id: str, answer: object) -> PollOutcome:
    if number(field(answer, "code")):
        return Unreachable("the upstream answered the poll with an error")
    data = field(answer, "data")
    word = text(field(data, "task_status"))
    state = status_of(STATUSES, word)
    if state == COMPLETED:
        return completed(data) or Unreachable("the task succeeded without a video")
    if state == FAILED:
        return failure(http, upstream_id, word, field(data, "task_status_msg"))
    return running(state)


def completed(data: object) -> Completed | None:
    video = first(field(data, "task_result", "videos"))
    url = text(field(video, "url"))
    if url is None:
        return None
    updated = number(field(data, "updated_at"))
    ended = updated / 1000 if updated else None
    expires = ended + LINK_TTL_S if ended else None
    return Completed(assets=(Asset("video", url, expires),),
                     seconds=number(field(video, "duration")), completed_at=ended,
                     expires_at=expires)


class KlingFlavor(SignedLinks):
    capabilities = frozenset({CREATE, IMAGE, AUDIO})
    priced_fields = PRICED

    def __init__(self, http: UpstreamHTTP) -> None:
        self.http = http

    def _request(self, method: str, path: str, key: str, **kwargs: Any) -> httpx.Request:
        try:
            return self.http.request(method, path, key, **kwargs)
        except ValueError as exc:  # not ACCESS_KEY:SECRET_KEY: our configuration, not the job
            raise UpstreamUnavailable("the upstream's key is malformed") from exc

    async def create(self, request: CreateRequest, key: str) -> Submitted:
        kind, payload = body(request)
        answer = await self.http.json(self._request("POST", f"/videos/{kind}", key, json=payload),
                                      "create")
        code = number(field(answer, "code"))
        if code:
            message = self.http.public(code, field(answer, "message"))
            if int(code) in _REFUSED_CODES:
                raise UpstreamRefused(400, message)
            raise UpstreamUnavailable(f"upstream refused the create ({int(code)})")
        task_id = text(field(answer, "data", "task_id"))
        if task_id is None:
            raise UpstreamAmbiguous("the upstream accepted the task without an id")
        return Submitted(task_id, {"kind": kind})

    async def poll(self, upstream_id: str, state: Mapping[str, str], key: str) -> PollOutcome:
        kind = state.get("kind", TEXT)
        try:
            answer = await self.http.json(
                self._request("GET", f"/videos/{kind}/{upstream_id}", key), "poll",
                gone_on_404=True, ids=(upstream_id,))
        except UpstreamError as exc:
            return Unreachable(str(exc))
        return outcome(self.http, upstream_id, answer)

    async def cancel(self, upstream_id: str, state: Mapping[str, str], key: str) -> None:
        return None  # Kling offers no way to stop a task


def make(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
         secrets: UpstreamSecrets | None = None) -> Flavor:
    # One strategy per upstream: it caches the JWT it mints for each key.
    return KlingFlavor(UpstreamHTTP(name, base_url, client, timeout_s, AUTH(), secrets=secrets,
                                    errors=ERRORS))
