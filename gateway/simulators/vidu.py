"""Simulator of the Vidu video API (flavor ``vidu``).

Followed: Vidu API docs (platform.vidu.com/docs): "Text to Video" (``POST /ent/v2/text2video``),
"Image to Video" (``POST /ent/v2/img2video``), "Get Generation" (``GET
/ent/v2/tasks/{id}/creations``), "Cancel Task" (``POST /ent/v2/tasks/{id}/cancel``) and "Error
Code" (HTTP code, error code and message per failure); QuantumNous/new-api
relay/channel/task/vidu/adaptor.go (``Authorization: Token``, payload, states, creations).

Summary for the adapter (paths under the base URL ``.../ent/v2``)::

    auth:    Authorization: Token <key>; refused: 401 {code: 401, reason: "Unauthorized", ...}
    create:  POST /text2video {model, prompt (required), style?: general|anime, duration?,
              seed?, aspect_ratio?: 16:9|9:16|1:1|4:3|3:4, resolution?, movement_amplitude?:
              auto|small|medium|large, bgm?, payload?, off_peak?, watermark?, callback_url?}
             POST /img2video {model, images: [one URL or data:image/...;base64,...],
              prompt?, duration?, seed?, resolution?, movement_amplitude?, bgm?, audio?,
              payload?, off_peak?, callback_url?}
             models: viduq2(-pro|-turbo) 1..10 s at 540p|720p|1080p (default 5 s, 720p);
             viduq1 5 s at 1080p; vidu2.0 / vidu1.5 4|8 s at 360p|720p|1080p (default 4 s, 360p)
             -> 200 {task_id, state: "created", model, prompt, images, duration, seed,
                 aspect_ratio, resolution, movement_amplitude, bgm, payload, off_peak, credits,
                 created_at (ISO 8601)}   (duration/resolution: what will be rendered)
    poll:    GET /tasks/{id}/creations
             -> {id, state, err_code ("" unless failed), credits, payload, bgm, off_peak,
                 creations: [{id, url, cover_url, watermarked_url}] (success)}
    status:  created, queueing, processing, success, failed
    cancel:  POST /tasks/{id}/cancel {"id"} -> 200 {}; only created/queueing tasks, which then
             read failed with err_code UserCancelled; else 400 BadRequest.
    errors:  {code: <http status>, reason, message, metadata}; 400 FieldLacking / FieldInvalid /
             FieldItemCountOutOfRange, 404 TaskNotFound, 429 TooManyRequests, 500
             InternalServiceFailure; moderation at create: 400 TaskPromptPolicyViolation.
    links:   creation links are signed and valid 1 h from each poll (each poll issues fresh
             ones; seconds under [expire-url]). Credits are simulated figures.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.simulator import SECRET_DETAIL
from gateway.simulators.common import (
    CANCELLED,
    CREATED,
    EXPIRED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Endpoint,
    VendorJob,
    VendorSimulator,
    bearer,
    describe_image,
    digits,
    image_kind,
    iso,
    redacted,
)

_Q2 = {"durations": range(1, 11), "resolutions": ("540p", "720p", "1080p"),
       "duration": 5, "resolution": "720p"}
_V2 = {"durations": (4, 8), "resolutions": ("360p", "720p", "1080p"),
       "duration": 4, "resolution": "360p"}
MODELS: dict[str, dict[str, Any]] = {
    "viduq2": _Q2, "viduq2-pro": _Q2, "viduq2-turbo": _Q2,
    "viduq1": {"durations": (5,), "resolutions": ("1080p",), "duration": 5,
               "resolution": "1080p"},
    "vidu2.0": _V2, "vidu1.5": _V2,
}
_ENUMS = {"aspect_ratio": ("16:9", "9:16", "1:1", "4:3", "3:4"),
          "movement_amplitude": ("auto", "small", "medium", "large"),
          "style": ("general", "anime")}
CREDITS_PER_SECOND = {"360p": 2, "540p": 3, "720p": 5, "1080p": 10}
_REASONS = {401: "Unauthorized", 404: "TaskNotFound", 429: "TooManyRequests"}


def _error(status: int, reason: str, message: str) -> JSONResponse:
    body = {"code": status, "reason": reason, "message": message, "metadata": {}}
    return JSONResponse(body, status_code=status)


def _check(body: dict[str, Any], kind: str) -> JSONResponse | None:
    """The refusal of a create body, or None."""
    for name in ("model", *(("prompt",) if kind == "text2video" else ("images",))):
        if not body.get(name) or (name == "prompt" and not str(body[name]).strip()):
            return _error(400, "FieldLacking", f"field is missing or empty: {name}")
    spec = MODELS.get(str(body["model"]))
    if spec is None:
        return _error(400, "FieldInvalid", "invalid field: model")
    if kind == "img2video":
        images = body["images"]
        if not isinstance(images, list) or len(images) != 1:
            return _error(400, "FieldItemCountOutOfRange", "field item count out of range: images")
        if image_kind(images[0]) not in ("url", "data_url"):
            return _error(400, "FieldInvalid", "invalid field: images")
    bad = [name for name, allowed in _ENUMS.items() if name in body and body[name] not in allowed]
    duration = body.get("duration", spec["duration"])
    if isinstance(duration, bool) or duration not in spec["durations"]:
        bad.append("duration")
    if body.get("resolution", spec["resolution"]) not in spec["resolutions"]:
        bad.append("resolution")
    return _error(400, "FieldInvalid", f"invalid field: {', '.join(bad)}") if bad else None


class ViduSimulator(VendorSimulator):
    flavor = "vidu"
    base_path = "/ent/v2"
    words: ClassVar[dict[str, str]] = {
        CREATED: "created", QUEUED: "queueing", RUNNING: "processing", SUCCEEDED: "success",
        FAILED: "failed", CANCELLED: "failed", EXPIRED: "failed",
    }
    unknown_word = "scheduling"
    link_ttl_s = 3600.0

    def authenticate(self, request: Request) -> str | Response:
        key = bearer(request, scheme="token")
        if not self.key_allowed(key):
            return _error(401, "Unauthorized", "unauthorized")
        return key

    def failure(self, status: int) -> Response:
        reason = "TooManyRequests" if status == 429 else "InternalServiceFailure"
        return _error(status, reason, f"internal service failure ({SECRET_DETAIL})")

    def refusal(self) -> Response:
        return _error(400, "TaskPromptPolicyViolation", "prompt policy violation")

    def not_found(self, job_id: str) -> Response:
        return _error(404, "TaskNotFound", "task not found")

    def creator(self, kind: str) -> Endpoint:
        async def create(request: Request) -> Response:
            body = await self.read_json(request)
            if body is None:
                return _error(400, "BadRequest", "bad request")
            if (refused := _check(body, kind)) is not None:
                return refused
            prompt = str(body.get("prompt") or "")
            if (refusal := await self.admission(prompt)) is not None:
                return refusal
            return JSONResponse(self._accepted(self._start(request, body, kind, prompt), body))

        return self.creating(create)

    def _start(self, request: Request, body: dict[str, Any], kind: str, prompt: str) -> VendorJob:
        spec = MODELS[body["model"]]
        image = body["images"][0] if kind == "img2video" else None
        return self.new_job(
            request, digits(18), prompt=prompt, model=body["model"],
            seconds=float(body.get("duration", spec["duration"])),
            resolution=str(body.get("resolution", spec["resolution"])), kind=kind,
            body=redacted(body), image=describe_image(image) if image else None,
            extra={"seed": body.get("seed") or uuid.uuid4().int % 2**31},
        )

    def _credits(self, job: VendorJob) -> int:
        per_second = CREDITS_PER_SECOND.get(job.rendered_resolution, 5)
        return int(job.rendered_seconds * per_second)

    def _accepted(self, job: VendorJob, sent: dict[str, Any]) -> dict[str, Any]:
        echoed: dict[str, Any] = {name: sent[name] for name in ("images", "aspect_ratio", "payload")
                  if name in sent}
        seconds = job.rendered_seconds
        return {
            "task_id": job.id, "state": "created", "model": job.model, "prompt": job.prompt,
            **echoed, "duration": int(seconds) if seconds == int(seconds) else seconds,
            "seed": job.extra["seed"], "resolution": job.rendered_resolution,
            "movement_amplitude": sent.get("movement_amplitude", "auto"),
            "bgm": bool(sent.get("bgm", False)), "off_peak": bool(sent.get("off_peak", False)),
            "credits": self._credits(job), "created_at": iso(job.created),
        }

    async def creations(self, request: Request) -> Response:
        job_id = request.path_params["task_id"]
        return await self.polled(job_id, lambda job: JSONResponse(self.render(job, request)))

    def render(self, job: VendorJob, request: Request) -> dict[str, Any]:
        now = time.time()
        stage, _ = job.stage(now)
        err_code = {FAILED: "CreationPolicyViolation", CANCELLED: "UserCancelled"}.get(stage, "")
        body: dict[str, Any] = {
            "id": job.id, "state": self.status_word(job, now), "err_code": err_code,
            "credits": self._credits(job) if stage == SUCCEEDED else 0,
            "payload": job.body.get("payload", ""), "bgm": bool(job.body.get("bgm", False)),
            "off_peak": bool(job.body.get("off_peak", False)), "creations": [],
        }
        if stage == SUCCEEDED:
            # Vidu signs links when they are read, so every poll hands out fresh ones.
            body["creations"] = [{
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, job.id)),
                "url": self.link(request, job, "video", now),
                "cover_url": self.link(request, job, "cover", now),
                "watermarked_url": self.link(request, job, "video", now),
            }]
        return body

    async def cancel(self, request: Request) -> Response:
        job = self.live_job(request.path_params["task_id"])
        if job is None:
            return self.not_found(request.path_params["task_id"])
        if job.stage(time.time())[0] not in (CREATED, QUEUED):
            return _error(400, "BadRequest", "task can not be cancelled in its current state")
        job.cancelled_at = time.time()
        self.cancels.append(job.id)
        return JSONResponse({})

    def vendor_routes(self) -> list[Route]:
        base = self.base_path
        return [
            Route(base + "/text2video", self.creator("text2video"), methods=["POST"]),
            Route(base + "/img2video", self.creator("img2video"), methods=["POST"]),
            Route(base + "/tasks/{task_id}/creations", self.authed(self.creations),
                  methods=["GET"]),
            Route(base + "/tasks/{task_id}/cancel", self.authed(self.cancel), methods=["POST"]),
        ]


SIMULATOR = ViduSimulator
