"""Alibaba Wan on DashScope / Model Studio (flavor ``dashscope``).

Followed: Alibaba Cloud Model Studio "Wan text-to-video API reference" and "Wan image-to-video
API reference" (alibabacloud.com/help/en/model-studio: the async create with
``X-DashScope-Async: enable``, ``GET /tasks/{task_id}``, the task statuses, ``usage``); the
dashscope SDK's ``VideoSynthesis`` (dashscope/aigc/video_synthesis.py: async_call, fetch,
cancel); QuantumNous/new-api relay/channel/task/ali/adaptor.go (input and parameters fields,
metadata split between them, ``resolution`` for image-to-video and ``size`` for text-to-video).

Translation::

    model, prompt   -> model, input.prompt
    seconds         -> parameters.duration, always (older models render 5 s by default)
    size            -> parameters.size "W*H" for text-to-video (a tier: its landscape size);
                       parameters.resolution "720P" for image-to-video (the i2v/kf2v models,
                       or any request with an image), which takes no size
    image           -> input.img_url (input.first_frame_url for the kf2v models): a data URL
                       or an https URL, as DashScope takes either
    audio           -> parameters.audio, always where the model has it: Wan 2.5+ adds sound
                       unless told not to; the silent Wan 2.1/2.2 models are sent none
    metadata        -> input (negative_prompt, img_url, first_frame_url, last_frame_url,
                       audio_url, template) or parameters (prompt_extend, watermark, seed, …)

Result: ``output.video_url`` (public, signed for 24 h), with ``usage`` telling what was
rendered: duration (``video_duration`` on Wan 2.1/2.2), size (``video_ratio``) and audio.
Cancel: ``POST /tasks/{task_id}/cancel``, for a task still PENDING.

``UNKNOWN``: DashScope answers it for a task id it does not know, which is also what becomes
of every task 24 h after it was made. It is not the vendor's word that the job failed: it is
the vendor not answering about the job (a key of another region or workspace polls the same
way), so it reads as ``Unreachable``. A job whose task is really gone ends, refunded, at
``jobs.max_age_s``, as the spec has every job that no explicit failure ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.ledger.sizes import Size
from gateway.upstreams.auth import DashScope
from gateway.upstreams.base import UpstreamAmbiguous, UpstreamError
from gateway.upstreams.flavor import AUDIO, CANCEL, CREATE, IMAGE, CreateRequest, Flavor, Submitted
from gateway.upstreams.http import UpstreamHTTP
from gateway.upstreams.native import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    UNKNOWN,
    SignedLinks,
    failure,
    field,
    first_frame,
    flag,
    merged,
    number,
    rendered_size,
    running,
    status_of,
    text,
)
from gateway.upstreams.outcome import Asset, Completed, PollOutcome, Unreachable
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient

SYNTHESIS = "/services/aigc/video-generation/video-synthesis"
STATUSES = {"pending": QUEUED, "running": IN_PROGRESS, "succeeded": COMPLETED,
            "failed": FAILED, "canceled": FAILED, "unknown": UNKNOWN}
# The fields DashScope reads from ``input``; every other metadata key is a parameter.
INPUT_FIELDS = frozenset({"negative_prompt", "img_url", "first_frame_url", "last_frame_url",
                          "audio_url", "template"})
PRICED = frozenset({"model", "duration", "size", "resolution", "audio", "n", "video_count"})
RESERVED = frozenset({"input", "parameters", "prompt"})
# Models that make no sound: the audio switch is theirs to refuse.
SILENT_MODELS = ("wanx2.1", "wan2.1", "wan2.2")
# The size a bare tier renders at on the text-to-video models (landscape).
TIER_SIZES = {480: "832*480", 720: "1280*720", 1080: "1920*1080"}

AUTH = DashScope


def read_error(body: Any) -> tuple[str | None, str | None, str | None]:
    """``{"request_id", "code", "message"}``."""
    return text(field(body, "message")), text(field(body, "code")), None


ERRORS = read_error


def image_task(request: CreateRequest) -> bool:
    return (first_frame(request) is not None or "i2v" in request.model
            or "kf2v" in request.model)


def size_parameters(size: Size, image: bool) -> dict[str, str]:
    if image:
        return {"resolution": f"{size.short}P"}
    if size.width is not None and size.height is not None:
        return {"size": f"{size.width}*{size.height}"}
    tiered = TIER_SIZES.get(size.short)
    return {"size": tiered} if tiered else {"resolution": f"{size.short}P"}


def body(request: CreateRequest) -> dict[str, Any]:
    given = {key: value for key, value in request.metadata.items() if key in INPUT_FIELDS}
    rest = {key: value for key, value in request.metadata.items() if key not in INPUT_FIELDS}
    own_input: dict[str, object] = {"prompt": request.prompt}
    if request.image is not None:
        field_name = "first_frame_url" if "kf2v" in request.model else "img_url"
        own_input[field_name] = request.image.data_url()
    own_parameters: dict[str, object] = {**size_parameters(request.size, image_task(request)),
                                         "duration": request.seconds}
    if not request.model.startswith(SILENT_MODELS):
        own_parameters["audio"] = request.audio
    return {"model": request.model,
            "input": merged(given, own_input, priced=PRICED, reserved=RESERVED),
            "parameters": merged(rest, own_parameters, priced=PRICED, reserved=RESERVED)}


def outcome(http: UpstreamHTTP, upstream_id: str, task: object) -> PollOutcome:
    output = field(task, "output")
    word = text(field(output, "task_status"))
    state = status_of(STATUSES, word)
    if state == UNKNOWN:
        return Unreachable("the upstream does not know the task")
    if state == COMPLETED:
        return completed(task) or Unreachable("the task succeeded without a video")
    if state == FAILED:
        code = field(output, "code") or word
        return failure(http, upstream_id, code, field(output, "message"))
    return running(state)


def completed(task: object) -> Completed | None:
    video = text(field(task, "output", "video_url"))
    if video is None:
        return None
    usage = field(task, "usage")
    rendered = (number(field(usage, "output_video_duration")) or number(field(usage, "duration"))
                or number(field(usage, "video_duration")))
    size = rendered_size(field(usage, "size")) or rendered_size(field(usage, "video_ratio"))
    return Completed(assets=(Asset("video", video),), seconds=rendered, size=size,
                     audio=flag(field(usage, "audio")))


class DashScopeFlavor(SignedLinks):
    capabilities = frozenset({CREATE, IMAGE, CANCEL, AUDIO})
    priced_fields = PRICED

    def __init__(self, http: UpstreamHTTP) -> None:
        self.http = http

    async def create(self, request: CreateRequest, key: str) -> Submitted:
        sent = self.http.request("POST", SYNTHESIS, key, json=body(request))
        answer = await self.http.json(sent, "create")
        task_id = text(field(answer, "output", "task_id"))
        if task_id is None:
            raise UpstreamAmbiguous("the upstream accepted the task without an id")
        return Submitted(task_id)

    async def poll(self, upstream_id: str, state: Mapping[str, str], key: str) -> PollOutcome:
        try:
            task = await self.http.json(self.http.request("GET", f"/tasks/{upstream_id}", key),
                                        "poll", gone_on_404=True, ids=(upstream_id,))
        except UpstreamError as exc:
            return Unreachable(str(exc))
        return outcome(self.http, upstream_id, task)

    async def cancel(self, upstream_id: str, state: Mapping[str, str], key: str) -> None:
        sent = self.http.request("POST", f"/tasks/{upstream_id}/cancel", key)
        await self.http.json(sent, "cancel", gone_on_404=True, ids=(upstream_id,))


def make(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
         secrets: UpstreamSecrets | None = None) -> Flavor:
    return DashScopeFlavor(UpstreamHTTP(name, base_url, client, timeout_s, AUTH(),
                                        secrets=secrets, errors=ERRORS))
