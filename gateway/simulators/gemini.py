"""Simulator of Google Veo on the Gemini API (flavor ``gemini``).

Followed: Gemini API docs "Generate videos with Veo" (ai.google.dev/gemini-api/docs/video, the
REST tab: ``models/{model}:predictLongRunning``, polling ``GET /{operation name}`` until
``done``, then ``curl -L -H "x-goog-api-key: ..." <video.uri>``); the google-genai SDK's
``models.generate_videos`` / ``operations.get`` request and response converters (instances[0]
prompt/image, parameters aspectRatio/durationSeconds/resolution/negativePrompt/numberOfVideos,
``generateVideoResponse.generatedSamples``, ``raiMediaFilteredCount``); Google's error model
(google.rpc.Status); QuantumNous/new-api relay/channel/task/gemini/{adaptor,dto}.go.

Summary for the adapter (paths under the base URL ``.../v1beta``)::

    auth:    x-goog-api-key: <key> header, or ?key=<key>
             no key: 403 PERMISSION_DENIED; wrong key: 400 INVALID_ARGUMENT (reason
             API_KEY_INVALID)
    create:  POST /models/{model}:predictLongRunning
             {instances: [{prompt, image?: {bytesBase64Encoded, mimeType} |
              {inlineData: {mimeType, data}}, lastFrame?, referenceImages?}],
              parameters?: {aspectRatio?: 16:9|9:16, durationSeconds?: (veo-3.1: 4|6|8,
              veo-3.0: 8, veo-2: 5..8), resolution?: 720p|1080p, negativePrompt?,
              personGeneration?, sampleCount?|numberOfVideos?: 1, seed?}}
             -> 200 {"name": "models/{model}/operations/{id}"}   (store the whole name)
    poll:    GET /{name}
             running: {"name"} (no "done" at all); done: {"name", "done": true, "response":
             {"@type": "...PredictLongRunningResponse", "generateVideoResponse":
             {"generatedSamples": [{"video": {"uri":
             ".../v1beta/files/{id}:download?alt=media"}}]}}}
             failed: {"name", "done": true, "error": {"code": 13, "message"}}
             filtered (``[rai]``): done with generateVideoResponse {raiMediaFilteredCount: 1,
             raiMediaFilteredReasons: [...]} and no generatedSamples.
    status:  none: done absent/false = running; done + response = succeeded; done + error or
             an empty, filtered response = failed. Nothing reports the seconds rendered.
    download: GET <video.uri> with the key -> 302 to a short-lived signed link (follow it;
             Range works there); without the key 403 PERMISSION_DENIED; a file past its
             lifetime (2 days; seconds under ``[expire-url]``) 404 NOT_FOUND.
    cancel:  none.
    errors:  {"error": {"code": <http status>, "message", "status": INVALID_ARGUMENT |
             PERMISSION_DENIED | NOT_FOUND | RESOURCE_EXHAUSTED | INTERNAL | UNAVAILABLE}}
             moderation at create: 400 INVALID_ARGUMENT.

Directives beyond the common ones: ``[rai]`` ends the job filtered by Responsible-AI policy;
``[unknown-status]`` and ``[render-seconds]`` do not apply (no status word, no duration field).
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.simulator import EXPIRING_URL_TTL_S, SECRET_DETAIL
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
    describe_image,
    image_kind,
    redacted,
)

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
_RESPONSE_TYPE = ("type.googleapis.com/google.ai.generativelanguage.v1beta."
                  "PredictLongRunningResponse")
FILE_TTL_S = 2 * 24 * 3600.0
REDIRECT_TTL_S = 300.0


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    body = {"code": status, "message": message, "status": _STATUS.get(status, "INTERNAL"), **extra}
    return JSONResponse({"error": body}, status_code=status)


def _invalid(message: str) -> JSONResponse:
    return _error(400, message)


def _durations(model: str) -> tuple[int, ...]:
    if model.startswith("veo-2"):
        return (5, 6, 7, 8)
    return (8,) if model.startswith("veo-3.0") else (4, 6, 8)


def _image_value(image: Any) -> str | None:
    """The base64 payload of a Veo image, in either of the shapes the API accepts."""
    if not isinstance(image, dict):
        return None
    inline = image.get("inlineData")
    data = inline.get("data") if isinstance(inline, dict) else image.get("bytesBase64Encoded")
    return data if isinstance(data, str) else None


def _check(model: str, instance: dict[str, Any], params: dict[str, Any]) -> str | None:
    """Why a predictLongRunning body is refused, or None."""
    if "image" in instance and image_kind(_image_value(instance["image"])) != "base64":
        return "Invalid value at 'instances[0].image': expected base64-encoded image bytes."
    if not str(instance.get("prompt") or "").strip() and "image" not in instance:
        return "A prompt is required."
    if params.get("aspectRatio", "16:9") not in ("16:9", "9:16"):
        return "Aspect ratio must be one of 16:9, 9:16."
    duration = params.get("durationSeconds", _durations(model)[-1])
    if _integer(duration) not in _durations(model):
        return f"The requested duration {duration!r} is not supported by {model}."
    if params.get("resolution", "720p") not in ("720p", "1080p"):
        return "Resolution must be one of 720p, 1080p."
    if _integer(params.get("sampleCount") or params.get("numberOfVideos") or 1) != 1:
        return "Only one video per request is supported."
    return None


def _integer(value: Any) -> int | None:
    """A JSON number or numeric string as an int (the REST API takes both), else None."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class GeminiSimulator(VendorSimulator):
    flavor = "gemini"
    base_path = "/v1beta"
    words: ClassVar[dict[str, str]] = {
        CREATED: "running", QUEUED: "running", RUNNING: "running", SUCCEEDED: "done",
        FAILED: "error", CANCELLED: "error", EXPIRED: "error",
    }
    unknown_word = "running"
    link_ttl_s = REDIRECT_TTL_S

    def caller_key(self, request: Request) -> str:
        return request.headers.get("x-goog-api-key") or request.query_params.get("key", "")

    def authenticate(self, request: Request) -> str | Response:
        key = self.caller_key(request)
        if not key:
            message = ("Method doesn't allow unregistered callers (callers without established "
                       "identity). Please use API Key or other form of API consumer identity.")
            return _error(403, message)
        if not self.key_allowed(key):
            reason = {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                      "reason": "API_KEY_INVALID", "domain": "googleapis.com"}
            return _error(400, "API key not valid. Please pass a valid API key.",
                          details=[reason])
        return key

    def failure(self, status: int) -> Response:
        return _error(status, f"The service is currently unavailable ({SECRET_DETAIL}).")

    def refusal(self) -> Response:
        return _invalid("The prompt could not be submitted: it violates the usage guidelines.")

    def not_found(self, job_id: str) -> Response:
        return _error(404, f"Operation {job_id} not found.")

    async def create(self, request: Request) -> Response:
        model = request.path_params["model"]
        if not model.startswith("veo-"):
            return _error(404, f"models/{model} is not found for API version v1beta, or is not "
                               "supported for predictLongRunning.")
        body = await self.read_json(request)
        if body is None:
            return _invalid("Invalid JSON payload received.")
        instances, params = body.get("instances"), body.get("parameters") or {}
        if not isinstance(instances, list) or len(instances) != 1 or not isinstance(
                instances[0], dict) or not isinstance(params, dict):
            return _invalid("Exactly one instance is required.")
        refused = _check(model, instances[0], params)
        if refused is not None:
            return _invalid(refused)
        prompt = str(instances[0].get("prompt") or "")
        if (refusal := await self.admission(prompt)) is not None:
            return refusal
        job = self._start(request, model, instances[0], params, body)
        return JSONResponse({"name": job.id})

    def _start(self, request: Request, model: str, instance: dict[str, Any],
               params: dict[str, Any], body: dict[str, Any]) -> VendorJob:
        image = _image_value(instance.get("image"))
        operation = "".join(secrets.choice(string.ascii_lowercase + string.digits)
                            for _ in range(12))
        seconds = _integer(params.get("durationSeconds")) or _durations(model)[-1]
        return self.new_job(
            request, f"models/{model}/operations/{operation}",
            prompt=str(instance.get("prompt") or ""), model=model, seconds=float(seconds),
            resolution=str(params.get("resolution", "720p")), kind="image" if image else "text",
            body=redacted(body), image=describe_image(image) if image else None,
            extra={"file": "".join(secrets.choice(string.ascii_lowercase) for _ in range(12))},
        )

    async def retrieve(self, request: Request) -> Response:
        name = f"models/{request.path_params['model']}/operations/{request.path_params['op']}"
        return await self.polled(name, lambda job: JSONResponse(self.render(job, request)))

    def render(self, job: VendorJob, request: Request) -> dict[str, Any]:
        stage, _ = job.stage(time.time())
        if stage in (CREATED, QUEUED, RUNNING):
            return {"name": job.id}
        if stage != SUCCEEDED:
            return {"name": job.id, "done": True,
                    "error": {"code": 13, "message": "Video generation failed."}}
        if "rai" in job.directives:
            reasons = ["The video could not be generated: it may violate the usage guidelines."]
            result = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": reasons}
        else:
            uri = f"{str(request.base_url).rstrip('/')}{self.base_path}/files/" \
                  f"{job.extra['file']}:download?alt=media"
            result = {"generatedSamples": [{"video": {"uri": uri}}]}
        response = {"@type": _RESPONSE_TYPE, "generateVideoResponse": result}
        return {"name": job.id, "done": True, "response": response}

    async def download(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        job = next((j for j in self.jobs.values() if j.extra.get("file") == file_id), None)
        stage, ended = job.stage(time.time()) if job else (FAILED, None)
        lifetime = EXPIRING_URL_TTL_S if job and "expire-url" in job.directives else FILE_TTL_S
        if job is None or job.deleted or stage != SUCCEEDED or "rai" in job.directives or (
                ended is not None and time.time() > ended + lifetime):
            return _error(404, f"File {file_id} not found.")
        return RedirectResponse(self.link(request, job, "video", time.time()), status_code=302)

    def vendor_routes(self) -> list[Route]:
        base = self.base_path
        return [
            Route(base + "/models/{model}:predictLongRunning", self.creating(self.create),
                  methods=["POST"]),
            Route(base + "/models/{model}/operations/{op}", self.authed(self.retrieve),
                  methods=["GET"]),
            Route(base + "/files/{file_id}:download", self.authed(self.download),
                  methods=["GET"]),
        ]


SIMULATOR = GeminiSimulator
