"""The Vidu video API (flavor ``vidu``).

Followed: Vidu API docs (platform.vidu.com/docs): "Text to Video" (``POST /ent/v2/text2video``),
"Image to Video" (``POST /ent/v2/img2video``), "Get Generation" (``GET
/ent/v2/tasks/{id}/creations``), "Cancel Task" (``POST /ent/v2/tasks/{id}/cancel``) and "Error
Code"; QuantumNous/new-api relay/channel/task/vidu/adaptor.go (``Authorization: Token``, the
payload, the states, ``creations``).

Translation::

    model, prompt   -> model, prompt
    seconds         -> duration, always (models default to 4 or 5 s)
    size            -> resolution (the short side's tier: 540p, 720p, 1080p) and, for
                       text-to-video, aspect_ratio (Vidu's nearest; a bare tier, 16:9)
    image           -> images [one data URL or https URL] on img2video; metadata
                       img_url/first_frame_url too
    audio           -> audio, always (the Q2/Q3 models make sound when asked)
    metadata        -> top-level fields (seed, movement_amplitude, bgm, style, watermark,
                       off_peak, …)

The create answers with the duration and resolution the task will render, which is all Vidu
ever tells of it; they are kept with the job and reported when it completes. Result:
``creations[0].url`` and ``cover_url`` (the thumbnail), signed for an hour from each poll, so a
stale stored link is renewed by polling again. Cancel: ``POST /tasks/{id}/cancel``, for a task
not yet processing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.upstreams.auth import TokenKey
from gateway.upstreams.base import UpstreamAmbiguous, UpstreamError
from gateway.upstreams.flavor import AUDIO, CANCEL, CREATE, IMAGE, CreateRequest, Flavor, Submitted
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
    merged,
    nearest_ratio,
    number,
    rendered_size,
    running,
    status_of,
    text,
)
from gateway.upstreams.outcome import Asset, Completed, Failed, PollOutcome, Unreachable
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient

STATUSES = {"created": QUEUED, "queueing": QUEUED, "processing": IN_PROGRESS,
            "success": COMPLETED, "failed": FAILED}
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")
PRICED = frozenset({"model", "duration", "resolution", "aspect_ratio", "audio"})
RESERVED = frozenset({"prompt", "images", "callback_url", "payload", *IMAGE_KEYS})

AUTH = TokenKey


def read_error(body: Any) -> tuple[str | None, str | None, str | None]:
    """``{"code": <http status>, "reason", "message", "metadata"}``."""
    return text(field(body, "message")), text(field(body, "reason")), None


ERRORS = read_error


def body(request: CreateRequest) -> tuple[str, dict[str, Any]]:
    """(create path, body)."""
    own: dict[str, object] = {"model": request.model, "prompt": request.prompt,
                              "duration": request.seconds, "resolution": request.size.tier,
                              "audio": request.audio}
    if lead := first_frame(request):
        own["images"] = [lead]
        path = "/img2video"
    else:
        own["aspect_ratio"] = nearest_ratio(request.size, RATIOS) or "16:9"
        path = "/text2video"
    return path, merged(request.metadata, own, priced=PRICED, reserved=RESERVED)


def promised(answer: object) -> dict[str, str]:
    """What the create says the task will render, kept to report on completion."""
    kept = {"seconds": text(field(answer, "duration")),
            "resolution": rendered_size(field(answer, "resolution"))}
    return {name: value for name, value in kept.items() if value}


def outcome(http: UpstreamHTTP, upstream_id: str, task: object,
            state: Mapping[str, str]) -> PollOutcome:
    word = text(field(task, "state"))
    found = status_of(STATUSES, word)
    if found == COMPLETED:
        creation = first(field(task, "creations"))
        url = text(field(creation, "url"))
        if url is None:
            return Unreachable("the task succeeded without a video")
        assets = [Asset("video", url)]
        if cover := text(field(creation, "cover_url")):
            assets.append(Asset("thumbnail", cover))
        return Completed(assets=tuple(assets), seconds=number(state.get("seconds")),
                         size=state.get("resolution"))
    if found == FAILED:
        return failure(http, upstream_id, field(task, "err_code") or word, None)
    return running(found)


class ViduFlavor(SignedLinks):
    capabilities = frozenset({CREATE, IMAGE, CANCEL, AUDIO})
    priced_fields = PRICED

    def __init__(self, http: UpstreamHTTP) -> None:
        self.http = http

    async def create(self, request: CreateRequest, key: str) -> Submitted:
        path, payload = body(request)
        answer = await self.http.json(self.http.request("POST", path, key, json=payload),
                                      "create")
        task_id = text(field(answer, "task_id"))
        if task_id is None:
            raise UpstreamAmbiguous("the upstream accepted the task without an id")
        kept = promised(answer)
        # A create may already answer "failed"; any other state waits for the first poll.
        early = outcome(self.http, task_id, answer, kept)
        return Submitted(task_id, kept, early if isinstance(early, Failed) else None)

    async def poll(self, upstream_id: str, state: Mapping[str, str], key: str) -> PollOutcome:
        try:
            task = await self.http.json(
                self.http.request("GET", f"/tasks/{upstream_id}/creations", key), "poll",
                gone_on_404=True, ids=(upstream_id,))
        except UpstreamError as exc:
            return Unreachable(str(exc))
        return outcome(self.http, upstream_id, task, state)

    async def cancel(self, upstream_id: str, state: Mapping[str, str], key: str) -> None:
        sent = self.http.request("POST", f"/tasks/{upstream_id}/cancel", key,
                                 json={"id": upstream_id})
        await self.http.json(sent, "cancel", gone_on_404=True, ids=(upstream_id,))


def make(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
         secrets: UpstreamSecrets | None = None) -> Flavor:
    return ViduFlavor(UpstreamHTTP(name, base_url, client, timeout_s, AUTH(), secrets=secrets,
                                   errors=ERRORS))
