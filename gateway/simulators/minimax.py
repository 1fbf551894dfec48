"""Simulator of MiniMax Hailuo video generation (flavor ``minimax``).

Followed: MiniMax API reference (platform.minimax.io/docs/api-reference): "Video Generation"
create task (``POST /v1/video_generation``), "Query Video Generation Task"
(``GET /v1/query/video_generation?task_id=``) and "File Retrieve" (``GET /v1/files/retrieve``),
with the ``base_resp`` status codes; QuantumNous/new-api relay/channel/task/hailuo/{adaptor,
models,constants}.go (payload, model table, status words, file lookup); the model rules noted in
nodetool-ai/nodetool#4309 (01-series fixed at 6 s / 720P, 10 s only at 768P, 512P only on
Hailuo-02, Hailuo-2.3-Fast image-to-video only) and the numeric ``file.file_id`` reported in
chatfire-AI/huobao-drama#59.

Summary for the adapter (paths under the base URL ``.../v1``)::

    auth:    Authorization: Bearer <key>
    errors:  {"base_resp": {"status_code", "status_msg"}} on HTTP 200, the create's with
             "task_id": "": 1004 auth failed, 2013 invalid params, 1026 sensitive input,
             1002 rate limit (a /_sim/faults status answers that HTTP status with 1002 or 1000).
             Read base_resp on every answer, whatever the HTTP status.
    create:  POST /video_generation {model, prompt (required without first_frame_image),
              duration?: 6|10, resolution?: 512P|720P|768P|1080P, first_frame_image?,
              last_frame_image? (URL or data:image/...;base64,...), subject_reference? (S2V-01:
              [{type: "character", image: [...]}]), prompt_optimizer?, fast_pretreatment?,
              aigc_watermark?, callback_url?}
             models: MiniMax-Hailuo-2.3 (6|10 s, 768P|1080P), MiniMax-Hailuo-2.3-Fast (same,
             image required), MiniMax-Hailuo-02 (6|10 s, 512P|768P|1080P), T2V-01(-Director),
             I2V-01(-Director|-live) (image required), S2V-01: fixed 6 s / 720P;
             1080P only for 6 s.
             -> {"task_id", "base_resp": {"status_code": 0, "status_msg": "success"}}
    poll:    GET /query/video_generation?task_id=
             -> {task_id, status, file_id ("" until Success), video_width, video_height
                 (the pixels rendered), base_resp}; an unknown task: base_resp 2013.
    status:  Preparing, Queueing, Processing, Success, Fail
    result:  GET /files/retrieve?file_id= -> {file: {file_id (a number), bytes, created_at,
             filename, purpose: "video_generation", download_url}, base_resp}; each call
             issues a fresh signed download_url valid 1 h (seconds under [expire-url]).
    cancel:  none. Nothing reports the seconds rendered.
"""

from __future__ import annotations

import time
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
    VendorJob,
    VendorSimulator,
    bearer,
    describe_image,
    digits,
    image_kind,
    redacted,
)

_HAILUO = {"durations": (6, 10), "resolutions": ("768P", "1080P"), "default": "768P"}
_FIXED = {"durations": (6,), "resolutions": ("720P",), "default": "720P"}
MODELS: dict[str, dict[str, Any]] = {
    "MiniMax-Hailuo-2.3": _HAILUO,
    "MiniMax-Hailuo-2.3-Fast": {**_HAILUO, "needs": "first_frame_image"},
    "MiniMax-Hailuo-02": {**_HAILUO, "resolutions": ("512P", "768P", "1080P")},
    "T2V-01-Director": _FIXED, "T2V-01": _FIXED,
    "I2V-01-Director": {**_FIXED, "needs": "first_frame_image"},
    "I2V-01-live": {**_FIXED, "needs": "first_frame_image"},
    "I2V-01": {**_FIXED, "needs": "first_frame_image"},
    "S2V-01": {**_FIXED, "needs": "subject_reference"},
}
PIXELS = {"512P": (912, 512), "720P": (1280, 720), "768P": (1366, 768), "1080P": (1920, 1080)}
_OK = {"status_code": 0, "status_msg": "success"}


def _answer(code: int, message: str, http_status: int = 200, **fields: Any) -> JSONResponse:
    base = {"status_code": code, "status_msg": message}
    return JSONResponse({**fields, "base_resp": base}, status_code=http_status)


def _invalid(message: str) -> JSONResponse:
    return _answer(2013, f"invalid params, {message}", task_id="")


def _check(body: dict[str, Any]) -> str | None:
    """Why a create body is refused, or None."""
    spec = MODELS.get(str(body.get("model")))
    if spec is None:
        return f"model {body.get('model')!r} is not supported"
    if spec.get("needs") and not body.get(spec["needs"]):
        return f"{spec['needs']} is required for {body['model']}"
    if not body.get("first_frame_image") and not str(body.get("prompt") or "").strip():
        return "prompt is required"
    for name in ("first_frame_image", "last_frame_image"):
        if name in body and image_kind(body[name]) not in ("url", "data_url"):
            return f"{name} must be a URL or a base64 data URL"
    duration = body.get("duration", 6)
    resolution = body.get("resolution", spec["default"])
    if isinstance(duration, bool) or duration not in spec["durations"]:
        return f"duration {duration!r} is not supported by {body['model']}"
    if resolution not in spec["resolutions"] or (resolution == "1080P" and duration != 6):
        return f"resolution {resolution!r} is not supported for {duration} s"
    return None


class MiniMaxSimulator(VendorSimulator):
    flavor = "minimax"
    base_path = "/v1"
    words: ClassVar[dict[str, str]] = {
        CREATED: "Preparing", QUEUED: "Queueing", RUNNING: "Processing", SUCCEEDED: "Success",
        FAILED: "Fail", CANCELLED: "Fail", EXPIRED: "Fail",
    }
    unknown_word = "Rendering"
    link_ttl_s = 3600.0

    def authenticate(self, request: Request) -> str | Response:
        key = bearer(request)
        if not self.key_allowed(key):
            message = ("login fail: Please carry the API secret key in the 'Authorization' field "
                       "of the request header")
            return _answer(1004, message)
        return key

    def failure(self, status: int) -> Response:
        code = 1002 if status == 429 else 1000
        return _answer(code, f"service error ({SECRET_DETAIL})", status, task_id="")

    def refusal(self) -> Response:
        return _answer(1026, "input new_sensitive, the prompt may contain sensitive content",
                       task_id="")

    def not_found(self, job_id: str) -> Response:
        return _answer(2013, f"invalid params, task {job_id} not found", task_id=job_id,
                       status="", file_id="")

    async def create(self, request: Request) -> Response:
        body = await self.read_json(request)
        if body is None:
            return _invalid("the request body is not valid JSON")
        refused = _check(body)
        if refused is not None:
            return _invalid(refused)
        prompt = str(body.get("prompt") or "")
        if (refusal := await self.admission(prompt)) is not None:
            return refusal
        spec = MODELS[body["model"]]
        image = body.get("first_frame_image")
        job = self.new_job(
            request, digits(15), prompt=prompt, model=body["model"],
            seconds=float(body.get("duration", 6)),
            resolution=str(body.get("resolution", spec["default"])),
            kind="image" if image else "text", body=redacted(body),
            image=describe_image(image) if image else None, extra={"file_id": int(digits(15))},
        )
        return JSONResponse({"task_id": job.id, "base_resp": _OK})

    async def query(self, request: Request) -> Response:
        job_id = request.query_params.get("task_id", "")
        return await self.polled(job_id, lambda job: JSONResponse(self.render(job)))

    def render(self, job: VendorJob) -> dict[str, Any]:
        stage, _ = job.stage(time.time())
        body: dict[str, Any] = {"task_id": job.id, "status": self.status_word(job), "file_id": ""}
        if stage == SUCCEEDED:
            width, height = PIXELS.get(job.rendered_resolution.upper(), PIXELS["720P"])
            body.update(file_id=str(job.extra["file_id"]), video_width=width,
                        video_height=height)
        return {**body, "base_resp": _OK}

    async def retrieve_file(self, request: Request) -> Response:
        file_id = request.query_params.get("file_id", "")
        job = next((j for j in self.jobs.values() if str(j.extra["file_id"]) == file_id), None)
        if job is None or job.deleted or job.stage(time.time())[0] != SUCCEEDED:
            return _answer(2013, f"invalid params, file {file_id} not found")
        _, ended = job.stage(time.time())
        file = {"file_id": job.extra["file_id"], "bytes": job.content_size,
                "created_at": int(ended or job.created), "filename": f"{job.id}.mp4",
                "purpose": "video_generation",
                "download_url": self.link(request, job, "video", time.time())}
        return JSONResponse({"file": file, "base_resp": _OK})

    def vendor_routes(self) -> list[Route]:
        base = self.base_path
        return [
            Route(base + "/video_generation", self.creating(self.create), methods=["POST"]),
            Route(base + "/query/video_generation", self.authed(self.query), methods=["GET"]),
            Route(base + "/files/retrieve", self.authed(self.retrieve_file), methods=["GET"]),
        ]


SIMULATOR = MiniMaxSimulator
