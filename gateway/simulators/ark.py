"""Simulator of ByteDance Seedance on Volcengine Ark / BytePlus ModelArk (flavor ``ark``).

Followed: Volcengine Ark docs "创建视频生成任务 API" (docs/82379/1520757) and "查询视频生成任务 API"
(docs/82379/1521309), as mirrored in InteraqtDev/interaqt-app-boilerplate
integrations/docs/volcengine/fangzhou/videogen/*.md; volcengine/volcengine-python-sdk
volcenginesdkarkruntime/resources/content_generation/tasks.py (create/get/list/delete) and
types/content_generation/content_generation_task.py; QuantumNous/new-api
relay/channel/task/doubao/adaptor.go; Seedance token pricing tables (W x H x fps x s / 1024).

Summary for the adapter (paths under the base URL ``.../api/v3``)::

    auth:    Authorization: Bearer <key>
             refused: 401 {"error": {"code": "AuthenticationError", "type": "Unauthorized"}}
    create:  POST /contents/generations/tasks
             {model, content: [{type: "text", text}, {type: "image_url",
              image_url: {url: http(s) URL | data:image/<lowercase fmt>;base64,...},
              role?: first_frame | last_frame | reference_image}],
              resolution?: 480p|720p|1080p, ratio?: 16:9|4:3|1:1|3:4|9:16|21:9|adaptive|keep_ratio,
              duration?: 2..15 or -1 (model picks) | frames?: 25+4n in [29, 289],
              seed?, camera_fixed?, watermark?, return_last_frame?, generate_audio?,
              service_tier?, execution_expires_after?, callback_url?}
             the same parameters may be text commands in the prompt ("--rs 720p --dur 5 --rt 16:9
             --fps 24 --seed 1 --wm true --cf false --frames 57"); body fields win.
             -> 200 {"id": "cgt-<yyyymmddhhmmss>-<5 chars>"}
    poll:    GET /contents/generations/tasks/{id}
             -> {id, model, status, error: null | {code, message}, created_at, updated_at (unix s),
                 service_tier, execution_expires_after,
                 on success: content: {video_url, last_frame_url (if return_last_frame)},
                 seed, resolution, ratio, duration (or frames), framespersecond,
                 usage: {completion_tokens, total_tokens}}   (what was rendered, not what was asked)
    status:  queued, running, succeeded, failed, cancelled, expired
    cancel:  DELETE /contents/generations/tasks/{id} -> 200 {}: a queued task becomes cancelled; a
             finished one is deleted (then 404); a running one is refused with 400 (assumed shape).
    errors:  {"error": {"code", "message", "param", "type"}}; 400 InvalidParameter/MissingParameter,
             404 InvalidEndpointOrModel.NotFound or ResourceNotFound, 429 RateLimitExceeded,
             500 InternalServiceError; moderation at create: 400 InputTextSensitiveContentDetected.
    links:   video_url and last_frame_url are public signed links valid 24 h from completion.

Directives beyond the common ones: ``[expired]`` ends the job as ``expired``.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
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
    TERMINAL,
    VendorJob,
    VendorSimulator,
    bearer,
    describe_image,
    image_kind,
    redacted,
)

RESOLUTIONS = ("480p", "720p", "1080p")
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive", "keep_ratio")
# Rendered pixels per (resolution, ratio), from the Seedance price tables; adaptive ratios
# render as 16:9 here.
PIXELS = {
    "480p": {"16:9": (864, 480), "4:3": (736, 544), "1:1": (640, 640), "3:4": (544, 736),
             "9:16": (480, 864), "21:9": (960, 416)},
    "720p": {"16:9": (1248, 704), "4:3": (1120, 832), "1:1": (960, 960), "3:4": (832, 1120),
             "9:16": (704, 1248), "21:9": (1504, 640)},
    "1080p": {"16:9": (1920, 1088), "4:3": (1664, 1248), "1:1": (1440, 1440),
              "3:4": (1248, 1664), "9:16": (1088, 1920), "21:9": (2176, 928)},
}
FPS = 24
_COMMANDS = {"rs": "resolution", "rt": "ratio", "dur": "duration", "fps": "framespersecond",
             "wm": "watermark", "cf": "camera_fixed", "camerafixed": "camera_fixed"}
_COMMAND = re.compile(r"--([a-z]+)\s+(\S+)")
_TYPES = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests"}


def _error(status: int, code: str, message: str, param: str = "") -> JSONResponse:
    kind = _TYPES.get(status, "InternalServiceError")
    body = {"error": {"code": code, "message": message, "param": param, "type": kind}}
    return JSONResponse(body, status_code=status)


def _invalid(param: str, detail: str = "is invalid") -> JSONResponse:
    message = f"The parameter `{param}` specified in the request {detail}."
    code = "MissingParameter" if detail == "is missing" else "InvalidParameter"
    return _error(400, code, message, param)


def _commands(text: str) -> dict[str, Any]:
    """The ``--name value`` parameters written after the prompt."""
    found: dict[str, Any] = {}
    for name, value in _COMMAND.findall(text):
        found[_COMMANDS.get(name, name)] = value
    return found


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and re.fullmatch(r"-?\d+", value) else None


def _read_content(content: Any) -> tuple[str, list[dict[str, Any]]] | Response:
    """The prompt and the image items of a ``content`` list."""
    if not isinstance(content, list) or not content:
        return _invalid("content", "is missing")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif kind == "image_url":
            holder = item.get("image_url")
            url = holder.get("url") if isinstance(holder, dict) else None
            if image_kind(url) not in ("url", "data_url"):
                return _invalid("content.image_url.url")
            if item.get("role") not in (None, "first_frame", "last_frame", "reference_image"):
                return _invalid("content.role")
            images.append(item)
        else:
            return _invalid("content.type")
    if len(texts) > 1 or not (texts or images):
        return _invalid("content.text")
    return (texts[0] if texts else ""), images


def _timing(params: dict[str, Any]) -> tuple[float, int | None] | Response:
    """(seconds asked, frames asked): ``frames`` outranks ``duration``; -1 lets the model pick."""
    if params.get("frames") is not None:
        frames = _integer(params["frames"])
        if frames is None or not 29 <= frames <= 289 or (frames - 25) % 4:
            return _invalid("frames")
        return frames / FPS, frames
    duration = _integer(params.get("duration", 5))
    if duration is None or not (duration == -1 or 2 <= duration <= 15):
        return _invalid("duration")
    return (5.0 if duration == -1 else float(duration)), None


def _parameters(body: dict[str, Any], prompt: str) -> dict[str, Any] | Response:
    params = {**_commands(prompt), **{k: v for k, v in body.items() if k != "content"}}
    default = "1080p" if "seedance-1-0-pro" in str(body.get("model")) else "720p"
    params.setdefault("resolution", default)
    params.setdefault("ratio", "16:9")
    if params["resolution"] not in RESOLUTIONS:
        return _invalid("resolution")
    if params["ratio"] not in RATIOS:
        return _invalid("ratio")
    timing = _timing(params)
    if isinstance(timing, Response):
        return timing
    params["seconds"], params["frames"] = timing
    return params


class ArkSimulator(VendorSimulator):
    flavor = "ark"
    base_path = "/api/v3"
    words: ClassVar[dict[str, str]] = {
        CREATED: "queued", QUEUED: "queued", RUNNING: "running", SUCCEEDED: "succeeded",
        FAILED: "failed", CANCELLED: "cancelled", EXPIRED: "expired",
    }
    unknown_word = "scheduling"

    def authenticate(self, request: Request) -> str | Response:
        key = bearer(request)
        if not self.key_allowed(key):
            message = "The API key or AK/SK in the request is missing or invalid."
            return _error(401, "AuthenticationError", message)
        return key

    def failure(self, status: int) -> Response:
        message = f"The service encountered an unexpected error ({SECRET_DETAIL})."
        code = "RateLimitExceeded" if status == 429 else "InternalServiceError"
        return _error(status, code, message)

    def refusal(self) -> Response:
        message = "The request failed because the input text may contain sensitive information."
        return _error(400, "InputTextSensitiveContentDetected", message)

    def not_found(self, job_id: str) -> Response:
        return _error(404, "ResourceNotFound", f"The specified task {job_id} is not found.")

    async def create(self, request: Request) -> Response:
        body = await self.read_json(request)
        if body is None:
            return _error(400, "InvalidParameter", "The request body is not valid JSON.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _invalid("model", "is missing")
        if "seedance" not in model and not model.startswith("ep-"):
            message = f"The model or endpoint {model} does not exist or you do not have access."
            return _error(404, "InvalidEndpointOrModel.NotFound", message)
        read = _read_content(body.get("content"))
        if isinstance(read, Response):
            return read
        prompt, images = read
        if ("i2v" in model and not images) or ("t2v" in model and images):
            return _invalid("content", "does not match the model's task type")
        params = _parameters(body, prompt)
        if isinstance(params, Response):
            return params
        if (refusal := await self.admission(prompt)) is not None:
            return refusal
        image = describe_image(images[0]["image_url"]["url"]) if images else None
        job = self.new_job(
            request, _task_id(), prompt=prompt, model=model, seconds=params["seconds"],
            resolution=params["resolution"], kind="image" if images else "text",
            body=redacted(body), image=image, extra=params,
        )
        return JSONResponse({"id": job.id})

    async def retrieve(self, request: Request) -> Response:
        job_id = request.path_params["task_id"]
        return await self.polled(job_id, lambda job: JSONResponse(self.render(job, request)))

    def render(self, job: VendorJob, request: Request) -> dict[str, Any]:
        now = time.time()
        stage, ended = job.stage(now)
        params = job.extra
        body: dict[str, Any] = {
            "id": job.id, "model": job.model, "status": self.status_word(job, now),
            "error": None, "created_at": int(job.created), "updated_at": int(ended or now),
            "service_tier": params.get("service_tier", "default"),
            "execution_expires_after": params.get("execution_expires_after", 172800),
        }
        if stage == FAILED:
            body["error"] = {"code": "OutputVideoSensitiveContentDetected",
                             "message": "The output video may contain sensitive information."}
        if stage == SUCCEEDED and ended is not None:
            body.update(self._result(job, request, ended))
        return body

    def _result(self, job: VendorJob, request: Request, ended: float) -> dict[str, Any]:
        params = job.extra
        content = {"video_url": self.link(request, job, "video", ended)}
        if str(params.get("return_last_frame")).lower() == "true":
            content["last_frame_url"] = self.link(request, job, "last_frame", ended)
        resolution = job.rendered_resolution
        ratio = params["ratio"] if params["ratio"] in PIXELS["480p"] else "16:9"
        width, height = PIXELS.get(resolution, PIXELS["720p"])[ratio]
        seconds = job.rendered_seconds
        tokens = int(width * height * FPS * seconds / 1024)
        result: dict[str, Any] = {
            "content": content, "seed": _integer(params.get("seed")) or _seed(job.id),
            "resolution": resolution, "ratio": ratio, "framespersecond": FPS,
            "usage": {"completion_tokens": tokens, "total_tokens": tokens},
        }
        if params["frames"] is not None and "render-seconds" not in job.directives:
            result["frames"] = params["frames"]
        else:
            result["duration"] = round(seconds) if seconds == int(seconds) else seconds
        if "generate_audio" in params:
            result["generate_audio"] = params["generate_audio"]
        return result

    async def delete(self, request: Request) -> Response:
        job = self.live_job(request.path_params["task_id"])
        if job is None:
            return self.not_found(request.path_params["task_id"])
        stage, _ = job.stage(time.time())
        if stage == RUNNING:
            message = "The task is running and can not be cancelled or deleted."
            return _error(400, "InvalidAction.TaskRunning", message)
        if stage in TERMINAL:
            job.deleted = True
            self.deletes.append(job.id)
        else:
            job.cancelled_at = time.time()
            self.cancels.append(job.id)
        return JSONResponse({})

    def vendor_routes(self) -> list[Route]:
        tasks = f"{self.base_path}/contents/generations/tasks"
        return [
            Route(tasks, self.creating(self.create), methods=["POST"]),
            Route(tasks + "/{task_id}", self.authed(self.retrieve), methods=["GET"]),
            Route(tasks + "/{task_id}", self.authed(self.delete), methods=["DELETE"]),
        ]


def _task_id() -> str:
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    return f"cgt-{stamp}-{uuid.uuid4().hex[:5]}"


def _seed(job_id: str) -> int:
    return int(uuid.uuid5(uuid.NAMESPACE_URL, job_id).int % 2**31)


SIMULATOR = ArkSimulator
