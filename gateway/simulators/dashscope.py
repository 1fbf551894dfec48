"""Simulator of Alibaba Wan on DashScope / Model Studio (flavor ``dashscope``).

Followed: Alibaba Cloud Model Studio "Wan text-to-video API reference (2.1-2.6)" and the
image-to-video reference (alibabacloud.com/help/model-studio, legacy-wan-*-api-reference: the
create/poll workflow, ``X-DashScope-Async: enable``, the SUCCEEDED/FAILED/UNKNOWN responses);
the dashscope SDK's ``VideoSynthesis`` (dashscope/aigc/video_synthesis.py, async_call/fetch/
cancel); QuantumNous/new-api relay/channel/task/ali/adaptor.go and its test bodies
(usage of wan2.6: SR, duration, output_video_duration, ratio/size, video_count).

Summary for the adapter (paths under the base URL ``.../api/v1``)::

    auth:    Authorization: Bearer <key>; the create also needs X-DashScope-Async: enable
             refused: 401 {"code": "InvalidApiKey", "message", "request_id"};
             no async header: 403 {"code": "AccessDenied", ...}
    create:  POST /services/aigc/video-generation/video-synthesis
             {model, input: {prompt, negative_prompt?, img_url? (i2v: URL or
              data:image/...;base64,...), first_frame_url?/last_frame_url? (kf2v), audio_url?},
              parameters: {size?: "W*H" (t2v), resolution?: 480P|720P|1080P (i2v),
              duration?: int (wan2.5: 5|10, wan2.6+: 2..15, older: 5), prompt_extend?,
              watermark?, audio?, seed?}}
             -> 200 {"output": {"task_id", "task_status": "PENDING"}, "request_id"}
    poll:    GET /tasks/{task_id}
             -> {"request_id", "output": {task_id, task_status, submit_time, scheduled_time,
                 end_time ("YYYY-MM-DD HH:MM:SS.fff"), orig_prompt, actual_prompt?,
                 video_url (SUCCEEDED) | code, message (FAILED)},
                 "usage" (SUCCEEDED): wan2.5+ {duration, output_video_duration,
                 input_video_duration, size "W*H", SR (short side), video_count, audio?};
                 wanx2.1/wan2.2
                 {video_duration, video_ratio "W*H", video_count}}   (what was rendered)
             an unknown or expired task_id answers 200 with task_status UNKNOWN.
    status:  PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, UNKNOWN
    cancel:  POST /tasks/{task_id}/cancel -> {"request_id"}; only a PENDING task, else
             400 {"code": "UnsupportedOperation"}.
    errors:  {"request_id", "code", "message"}; 400 InvalidParameter, 429 Throttling.RateQuota,
             500 InternalError; moderation at create: 400 DataInspectionFailed.
    links:   video_url is a public signed link valid 24 h from completion.
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
    VendorJob,
    VendorSimulator,
    bearer,
    describe_image,
    image_kind,
    redacted,
)

TIERS = {"480P": (832, 480), "720P": (1280, 720), "1080P": (1920, 1080)}
_SIZE = re.compile(r"(\d+)\*(\d+)")


def _error(status: int, code: str, message: str) -> JSONResponse:
    body = {"request_id": str(uuid.uuid4()), "code": code, "message": message}
    return JSONResponse(body, status_code=status)


def _invalid(message: str) -> JSONResponse:
    return _error(400, "InvalidParameter", message)


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _durations(model: str) -> range | tuple[int, ...]:
    if model.startswith(("wan2.6", "wan2.7")):
        return range(2, 16)
    return (5, 10) if model.startswith("wan2.5") else (5,)


def _image_field(model: str) -> str | None:
    """The input field a model needs an image in (i2v: img_url; kf2v: first_frame_url)."""
    if "kf2v" in model:
        return "first_frame_url"
    return "img_url" if "i2v" in model else None


def _check_input(model: str, given: dict[str, Any]) -> str | None:
    """Why ``input`` is refused, or None."""
    field = _image_field(model)
    if field is None and not str(given.get("prompt") or "").strip():
        return "Field required: input.prompt"
    if field is not None and field not in given:
        return f"Field required: input.{field}"
    for name in ("img_url", "first_frame_url", "last_frame_url"):
        if name in given and image_kind(given[name]) not in ("url", "data_url"):
            return f"The image in input.{name} could not be read."
    return None


def _check_parameters(model: str, params: dict[str, Any]) -> str | None:
    """Why ``parameters`` is refused, or None."""
    duration = params.get("duration", 5)
    if isinstance(duration, bool) or duration not in _durations(model):
        return f"The duration {duration!r} is not supported by model {model}."
    if "size" in params and not _SIZE.fullmatch(str(params["size"])):
        return "The size parameter must be formatted as width*height, e.g. 1280*720."
    if "resolution" in params and params["resolution"] not in TIERS:
        return "The resolution parameter must be one of 480P, 720P, 1080P."
    return None


class DashScopeSimulator(VendorSimulator):
    flavor = "dashscope"
    base_path = "/api/v1"
    words: ClassVar[dict[str, str]] = {
        CREATED: "PENDING", QUEUED: "PENDING", RUNNING: "RUNNING", SUCCEEDED: "SUCCEEDED",
        FAILED: "FAILED", CANCELLED: "CANCELED", EXPIRED: "FAILED",
    }
    unknown_word = "SUSPENDED"

    def authenticate(self, request: Request) -> str | Response:
        key = bearer(request)
        if not self.key_allowed(key):
            return _error(401, "InvalidApiKey", "Invalid API-key provided.")
        return key

    def failure(self, status: int) -> Response:
        if status == 429:
            return _error(429, "Throttling.RateQuota", f"Requests rate limit exceeded "
                          f"({SECRET_DETAIL}).")
        return _error(status, "InternalError", f"An internal error has occured ({SECRET_DETAIL}).")

    def refusal(self) -> Response:
        return _error(400, "DataInspectionFailed", "Input data may contain inappropriate content.")

    def not_found(self, job_id: str) -> Response:
        output = {"task_id": job_id, "task_status": "UNKNOWN"}
        return JSONResponse({"request_id": str(uuid.uuid4()), "output": output})

    async def create(self, request: Request) -> Response:
        if request.headers.get("x-dashscope-async", "").lower() != "enable":
            message = "current user api does not support synchronous calls"
            return _error(403, "AccessDenied", message)
        body = await self.read_json(request)
        if body is None:
            return _invalid("The request body is not valid JSON.")
        model, given = body.get("model"), body.get("input")
        params = body.get("parameters") or {}
        if not isinstance(model, str) or not model:
            return _invalid("Model not exist.")
        if not isinstance(given, dict) or not isinstance(params, dict):
            return _invalid("Field required: input")
        refused = _check_input(model, given) or _check_parameters(model, params)
        if refused is not None:
            return _invalid(refused)
        prompt = str(given.get("prompt") or "")
        if (refusal := await self.admission(prompt)) is not None:
            return refusal
        image = next((given[n] for n in ("img_url", "first_frame_url") if n in given), None)
        job = self.new_job(
            request, str(uuid.uuid4()), prompt=prompt, model=model,
            seconds=float(params.get("duration", 5)), resolution=self._asked_tier(params),
            kind="image" if image else "text", body=redacted(body),
            image=describe_image(image) if image else None, extra=params,
        )
        output = {"task_id": job.id, "task_status": "PENDING"}
        return JSONResponse({"output": output, "request_id": str(uuid.uuid4())})

    @staticmethod
    def _asked_tier(params: dict[str, Any]) -> str:
        """The resolution tier asked: ``resolution`` as given, or ``size`` by its short side."""
        if "resolution" in params:
            return str(params["resolution"])
        match = _SIZE.fullmatch(str(params.get("size", "1280*720")))
        short = min(int(match.group(1)), int(match.group(2))) if match else 720
        return f"{short}P"

    async def retrieve(self, request: Request) -> Response:
        job_id = request.path_params["task_id"]
        return await self.polled(job_id, lambda job: JSONResponse(self.render(job, request)))

    def render(self, job: VendorJob, request: Request) -> dict[str, Any]:
        now = time.time()
        stage, ended = job.stage(now)
        output: dict[str, Any] = {"task_id": job.id, "task_status": self.status_word(job, now),
                                  "submit_time": _stamp(job.created)}
        if stage not in (CREATED, QUEUED):
            output["scheduled_time"] = _stamp(job.created + 0.1 * job.wall_s)
        if ended is not None:
            output["end_time"] = _stamp(ended)
        output["orig_prompt"] = job.prompt
        if job.extra.get("prompt_extend", True):
            output["actual_prompt"] = f"{job.prompt} Cinematic lighting, smooth motion."
        body: dict[str, Any] = {"request_id": str(uuid.uuid4()), "output": output}
        if stage == FAILED:
            output.update(code="DataInspectionFailed",
                          message="Output data may contain inappropriate content.")
        if stage == SUCCEEDED and ended is not None:
            output["video_url"] = self.link(request, job, "video", ended)
            body["usage"] = self._usage(job)
        return body

    def _usage(self, job: VendorJob) -> dict[str, Any]:
        width, height = self._rendered_size(job)
        seconds = job.rendered_seconds
        duration = int(seconds) if seconds == int(seconds) else seconds
        if not job.model.startswith(("wan2.5", "wan2.6", "wan2.7")):
            return {"video_duration": duration, "video_ratio": f"{width}*{height}",
                    "video_count": 1}
        usage: dict[str, Any] = {
            "duration": duration, "output_video_duration": duration, "input_video_duration": 0,
            "size": f"{width}*{height}", "SR": min(width, height), "video_count": 1,
        }
        if "audio" in job.extra:
            usage["audio"] = bool(job.extra["audio"])
        return usage

    def _rendered_size(self, job: VendorJob) -> tuple[int, int]:
        """The pixels rendered: the asked size, or the asked/rendered tier's landscape size."""
        tier = job.rendered_resolution.upper()
        match = _SIZE.fullmatch(str(job.extra.get("size", "")))
        if match and "render-resolution" not in job.directives:
            return int(match.group(1)), int(match.group(2))
        return TIERS.get(tier, TIERS["720P"])

    async def cancel(self, request: Request) -> Response:
        job = self.live_job(request.path_params["task_id"])
        if job is None:
            return _error(404, "InvalidParameter.NotFound", "The task does not exist.")
        if job.stage(time.time())[0] not in (CREATED, QUEUED):
            message = ("Failed to cancel the task, please confirm if the task is in PENDING "
                       "status.")
            return _error(400, "UnsupportedOperation", message)
        job.cancelled_at = time.time()
        self.cancels.append(job.id)
        return JSONResponse({"request_id": str(uuid.uuid4())})

    def vendor_routes(self) -> list[Route]:
        base = self.base_path
        create = f"{base}/services/aigc/video-generation/video-synthesis"
        return [
            Route(create, self.creating(self.create), methods=["POST"]),
            Route(base + "/tasks/{task_id}", self.authed(self.retrieve), methods=["GET"]),
            Route(base + "/tasks/{task_id}/cancel", self.authed(self.cancel), methods=["POST"]),
        ]


SIMULATOR = DashScopeSimulator
