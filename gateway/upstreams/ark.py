"""ByteDance Seedance on Volcengine Ark / BytePlus ModelArk (flavor ``ark``).

Followed: Volcengine Ark "创建视频生成任务 API" (docs/82379/1520757) and "查询视频生成任务 API"
(docs/82379/1521309); volcengine/volcengine-python-sdk volcenginesdkarkruntime/resources/
content_generation/tasks.py (create, get, delete) and types/content_generation/
content_generation_task.py; QuantumNous/new-api relay/channel/task/doubao/adaptor.go (parameters
at the top level of the body beside ``content``, metadata merged into them, the status words).

Translation::

    model, prompt   -> model, content[{type: text}]
    seconds         -> duration, always: the vendor's default differs by model, and new-api
                       bills its 4 s default while Seedance renders longer (their #5498)
    size            -> resolution (the tier of the short side) and ratio (Seedance's nearest;
                       for a bare tier, 16:9, or adaptive when an image leads)
    image           -> content[{type: image_url, image_url: {url: data URL | https URL}}];
                       metadata img_url/first_frame_url and last_frame_url become image items
                       with the first_frame/last_frame roles
    audio           -> generate_audio, always where the model has it: Seedance 1.5 and 2.0
                       make sound unless told not to, and Seedance 1.0 refuses the field
    metadata        -> top-level parameters (seed, watermark, camera_fixed, return_last_frame…)

Result: ``content.video_url`` (and ``content.last_frame_url``, offered as the thumbnail, when
metadata asks ``return_last_frame``), with the duration (or frames at framespersecond),
resolution and generate_audio actually rendered. Links are public and signed for 24 h.
Cancel: ``DELETE`` cancels a queued task; Ark refuses it for a running one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.ledger.sizes import Size
from gateway.upstreams.auth import Bearer
from gateway.upstreams.base import UpstreamAmbiguous, UpstreamError
from gateway.upstreams.flavor import AUDIO, CANCEL, CREATE, IMAGE, CreateRequest, Flavor, Submitted
from gateway.upstreams.http import UpstreamHTTP, openai_error
from gateway.upstreams.native import (
    COMPLETED,
    FAILED,
    IMAGE_KEYS,
    IN_PROGRESS,
    QUEUED,
    SignedLinks,
    failure,
    field,
    first_frame,
    flag,
    last_frame,
    merged,
    nearest_ratio,
    number,
    rendered_size,
    running,
    status_of,
    text,
)
from gateway.upstreams.outcome import Asset, Completed, PollOutcome, Unreachable
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient

TASKS = "/contents/generations/tasks"
STATUSES = {"queued": QUEUED, "running": IN_PROGRESS, "succeeded": COMPLETED,
            "failed": FAILED, "cancelled": FAILED, "expired": FAILED}
# Why a task ended without a video when Ark gives no error of its own.
_ENDED = {"cancelled": "The task was cancelled.",
          "expired": "The task expired before it could run."}
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
# Seedance bills tokens of width x height x fps x seconds; the tier (flex) and the draft mode
# change the rate.
PRICED = frozenset({"model", "duration", "frames", "resolution", "ratio", "generate_audio",
                    "service_tier", "draft"})
# Never from metadata: the body's structure, and a vendor callback that would tell a client's
# server the vendor's ids.
RESERVED = frozenset({"content", "callback_url", *IMAGE_KEYS})
LINK_TTL_S = 24 * 3600.0
# Models that make no sound and refuse the switch (an endpoint id ``ep-…`` gets it: a silent
# model's refusal is visible, while sound nobody was charged for is not).
SILENT_MODELS = ("seedance-1-0",)

AUTH = Bearer
ERRORS = openai_error  # {"error": {"code", "message", "param", "type"}}


def ratio(size: Size, has_image: bool) -> str:
    return nearest_ratio(size, RATIOS) or ("adaptive" if has_image else "16:9")


def body(request: CreateRequest) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
    lead, tail = first_frame(request), last_frame(request)
    if lead:
        item = {"type": "image_url", "image_url": {"url": lead}}
        content.append({**item, "role": "first_frame"} if tail else item)
    if tail:
        content.append({"type": "image_url", "image_url": {"url": tail}, "role": "last_frame"})
    own: dict[str, object] = {
        "model": request.model, "content": content, "duration": request.seconds,
        "resolution": request.size.tier, "ratio": ratio(request.size, lead is not None)}
    if not any(silent in request.model for silent in SILENT_MODELS):
        own["generate_audio"] = request.audio
    return merged(request.metadata, own, priced=PRICED, reserved=RESERVED)


def outcome(http: UpstreamHTTP, upstream_id: str, task: object) -> PollOutcome:
    word = text(field(task, "status"))
    state = status_of(STATUSES, word)
    if state == COMPLETED:
        return completed(task) or Unreachable("the task succeeded without a video")
    if state == FAILED:
        error = field(task, "error")
        code = field(error, "code") or word
        return failure(http, upstream_id, code, field(error, "message") or _ENDED.get(word or ""))
    return running(state)


def completed(task: object) -> Completed | None:
    video = text(field(task, "content", "video_url"))
    if video is None:
        return None
    ended = number(field(task, "updated_at"))
    expires = ended + LINK_TTL_S if ended else None
    assets = [Asset("video", video, expires)]
    if cover := text(field(task, "content", "last_frame_url")):
        assets.append(Asset("thumbnail", cover, expires))
    return Completed(assets=tuple(assets), seconds=seconds(task),
                     size=rendered_size(field(task, "resolution")),
                     audio=flag(field(task, "generate_audio")), completed_at=ended,
                     expires_at=expires)


def seconds(task: object) -> float | None:
    """The rendered length: ``duration``, or ``frames`` at ``framespersecond``."""
    if (duration := number(field(task, "duration"))) is not None:
        return duration
    frames, fps = number(field(task, "frames")), number(field(task, "framespersecond"))
    return round(frames / fps, 3) if frames and fps else None


class ArkFlavor(SignedLinks):
    capabilities = frozenset({CREATE, IMAGE, CANCEL, AUDIO})
    priced_fields = PRICED

    def __init__(self, http: UpstreamHTTP) -> None:
        self.http = http

    async def create(self, request: CreateRequest, key: str) -> Submitted:
        sent = self.http.request("POST", TASKS, key, json=body(request))
        answer = await self.http.json(sent, "create")
        task_id = text(field(answer, "id"))
        if task_id is None:
            raise UpstreamAmbiguous("the upstream accepted the task without an id")
        return Submitted(task_id)

    async def poll(self, upstream_id: str, state: Mapping[str, str], key: str) -> PollOutcome:
        try:
            task = await self.http.json(self.http.request("GET", f"{TASKS}/{upstream_id}", key),
                                        "poll", gone_on_404=True, ids=(upstream_id,))
        except UpstreamError as exc:
            return Unreachable(str(exc))
        return outcome(self.http, upstream_id, task)

    async def cancel(self, upstream_id: str, state: Mapping[str, str], key: str) -> None:
        await self.http.json(self.http.request("DELETE", f"{TASKS}/{upstream_id}", key),
                             "cancel", gone_on_404=True, ids=(upstream_id,))


def make(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
         secrets: UpstreamSecrets | None = None) -> Flavor:
    return ArkFlavor(UpstreamHTTP(name, base_url, client, timeout_s, AUTH(), secrets=secrets,
                                  errors=ERRORS))
