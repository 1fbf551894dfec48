"""Simulator of Kling's video API (flavor ``kling``).

Followed: Kling AI API reference "General Information" (API domain, JWT authentication with
AccessKey/SecretKey, the error-code table) and "Video Generation - Text to Video / Image to
Video" (create and query task, request fields, ``task_result.videos``), as published at
app.klingai.com/global/dev/document-api; QuantumNous/new-api
relay/channel/task/kling/adaptor.go (payload, JWT claims, status words).

Summary for the adapter (paths under the base URL ``.../v1``)::

    auth:    Authorization: Bearer <JWT>, HS256, header {alg: HS256, typ: JWT},
             claims {iss: ACCESS_KEY, exp: now + 1800, nbf: now - 5}, signed with SECRET_KEY.
             The simulator holds ACCESS_KEY:SECRET_KEY pairs (--api-key; default
             "simulator-access-key:simulator-secret-key-of-32-bytes").
             refused: 401 {code: 1001 empty | 1002 invalid/forged | 1003 not yet valid |
             1004 expired | 1000 unknown access key, message, request_id}
    create:  POST /videos/text2video {model_name? (default kling-v1), prompt (required),
              negative_prompt?, cfg_scale? [0, 1], mode?: std|pro, sound?: on|off,
              aspect_ratio?: 16:9|9:16|1:1, duration?: "5"|"10", camera_control?,
              watermark_info?, callback_url?, external_task_id?}
             POST /videos/image2video {model_name?, image and/or image_tail (URL or raw base64,
              no "data:" prefix), prompt?, negative_prompt?, cfg_scale?, mode?, sound?,
              duration?, static_mask?, dynamic_masks?, camera_control?, callback_url?,
              external_task_id?}
             -> 200 {code: 0, message: "SUCCEED", request_id, data: {task_id, task_info:
                 {external_task_id}, task_status: "submitted", created_at, updated_at (ms)}}
    poll:    GET /videos/text2video/{task_id} or /videos/image2video/{task_id} (the kind the
             task was made with; the other answers 404 code 1203)
             -> {code: 0, message, request_id, data: {task_id, task_status, task_status_msg,
                 task_info, created_at, updated_at, task_result (succeed):
                 {videos: [{id, url, duration: "<seconds rendered>"}]}}}
    status:  submitted, processing, succeed, failed
    cancel:  none.
    errors:  {code, message, request_id}; 400 1200/1201 invalid parameters, 404 1203 not found,
             429 1302 rate limit, 500 5000 server error; moderation at create: 400 1301.
    links:   videos[0].url is a public signed link valid 30 days from completion.
    mode:    std renders 720p, pro 1080p (not reported in the result).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar

import jwt
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
    millis,
    redacted,
)

DEFAULT_KEY = "simulator-access-key:simulator-secret-key-of-32-bytes"
KINDS = ("text2video", "image2video")
_AUTH = {1000: "Authentication failed", 1001: "Authorization is empty",
         1002: "Authorization is invalid", 1003: "Authorization is not yet valid",
         1004: "Authorization has expired"}
_ENUMS = {"mode": ("std", "pro"), "aspect_ratio": ("16:9", "9:16", "1:1"),
          "duration": ("5", "10"), "sound": ("on", "off")}


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
    return JSONResponse(body, status_code=status)


def _refused(code: int) -> JSONResponse:
    return _error(401, code, _AUTH[code])


def _claims_issuer(token: str) -> str | None:
    """The unverified ``iss``, to pick the secret that must have signed the token."""
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError:
        return None
    return issuer if isinstance(issuer, str) else None


def _check_fields(body: dict[str, Any], kind: str) -> str | None:
    """Why a create body is refused, or None."""
    if kind == "text2video" and not str(body.get("prompt") or "").strip():
        return "prompt is required"
    if len(str(body.get("prompt") or "")) > 2500:
        return "prompt cannot exceed 2500 characters"
    if kind == "image2video":
        images = [body[name] for name in ("image", "image_tail") if body.get(name)]
        if not images:
            return "image or image_tail is required"
        if any(image_kind(image) not in ("url", "base64") for image in images):
            return "image must be a URL or Base64 data without any prefix"
    for name, allowed in _ENUMS.items():
        if name in body and str(body[name]) not in allowed:
            return f"{name} must be one of {', '.join(allowed)}"
    scale = body.get("cfg_scale", 0.5)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 <= scale <= 1:
        return "cfg_scale must be in [0, 1]"
    return None


class KlingSimulator(VendorSimulator):
    flavor = "kling"
    base_path = "/v1"
    words: ClassVar[dict[str, str]] = {
        CREATED: "submitted", QUEUED: "submitted", RUNNING: "processing", SUCCEEDED: "succeed",
        FAILED: "failed", CANCELLED: "failed", EXPIRED: "failed",
    }
    unknown_word = "queueing"
    link_ttl_s = 30 * 24 * 3600.0

    def key_pairs(self) -> dict[str, str]:
        pairs = (key.partition(":") for key in self.api_keys or [DEFAULT_KEY])
        return {access: secret for access, _, secret in pairs}

    def authenticate(self, request: Request) -> str | Response:
        token = bearer(request)
        if not token:
            return _refused(1001)
        issuer = _claims_issuer(token)
        if issuer is None:
            return _refused(1002)
        secret = self.key_pairs().get(issuer)
        if secret is None:
            return _refused(1000)
        try:
            jwt.decode(token, secret, algorithms=["HS256"],
                       options={"require": ["iss", "exp", "nbf"]})
        except jwt.ExpiredSignatureError:
            return _refused(1004)
        except jwt.ImmatureSignatureError:
            return _refused(1003)
        except jwt.InvalidTokenError:
            return _refused(1002)
        return issuer

    def failure(self, status: int) -> Response:
        if status == 429:
            return _error(429, 1302, f"Rate limit exceeded ({SECRET_DETAIL})")
        return _error(status, 5000, f"Server internal error ({SECRET_DETAIL})")

    def refusal(self) -> Response:
        return _error(400, 1301, "Risk control: the content triggered the security policy")

    def not_found(self, job_id: str) -> Response:
        return _error(404, 1203, f"task {job_id} not found")

    def creator(self, kind: str) -> Endpoint:
        async def create(request: Request) -> Response:
            body = await self.read_json(request)
            if body is None:
                return _error(400, 1200, "request body is not valid JSON")
            refused = _check_fields(body, kind)
            if refused is not None:
                return _error(400, 1201, refused)
            prompt = str(body.get("prompt") or "")
            if (refusal := await self.admission(prompt)) is not None:
                return refusal
            return JSONResponse(self._accepted(self._start(request, body, kind, prompt)))

        return self.creating(create)

    def _start(self, request: Request, body: dict[str, Any], kind: str, prompt: str) -> VendorJob:
        image = body.get("image") or body.get("image_tail")
        mode = str(body.get("mode", "std"))
        return self.new_job(
            request, digits(18), prompt=prompt, model=str(body.get("model_name") or "kling-v1"),
            seconds=float(body.get("duration", 5)), resolution="1080p" if mode == "pro" else "720p",
            kind=kind, body=redacted(body), image=describe_image(image) if image else None,
            extra={"external_task_id": body.get("external_task_id")},
        )

    def _accepted(self, job: VendorJob) -> dict[str, Any]:
        data = {"task_id": job.id, "task_info": self._info(job), "task_status": "submitted",
                "created_at": millis(job.created), "updated_at": millis(job.created)}
        return {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}

    @staticmethod
    def _info(job: VendorJob) -> dict[str, Any]:
        external = job.extra.get("external_task_id")
        return {"external_task_id": external} if external else {}

    def retriever(self, kind: str) -> Endpoint:
        async def retrieve(request: Request) -> Response:
            job_id = request.path_params["task_id"]
            job = self.live_job(job_id)
            if job is not None and job.kind != kind:
                return self.not_found(job_id)
            return await self.polled(job_id, lambda job: JSONResponse(self.render(job, request)))

        return self.authed(retrieve)

    def render(self, job: VendorJob, request: Request) -> dict[str, Any]:
        now = time.time()
        stage, ended = job.stage(now)
        data: dict[str, Any] = {
            "task_id": job.id, "task_status": self.status_word(job, now), "task_status_msg": "",
            "task_info": self._info(job), "created_at": millis(job.created),
            "updated_at": millis(ended or now),
        }
        if stage == FAILED:
            data["task_status_msg"] = "Risk control: the output triggered the security policy"
        if stage == SUCCEEDED and ended is not None:
            seconds = job.rendered_seconds
            video = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, job.id)),
                     "url": self.link(request, job, "video", ended),
                     "duration": f"{seconds:g}"}
            data["task_result"] = {"videos": [video]}
        return {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}

    def vendor_routes(self) -> list[Route]:
        routes = []
        for kind in KINDS:
            path = f"{self.base_path}/videos/{kind}"
            routes.append(Route(path, self.creator(kind), methods=["POST"]))
            routes.append(Route(path + "/{task_id}", self.retriever(kind), methods=["GET"]))
        return routes


SIMULATOR = KlingSimulator
