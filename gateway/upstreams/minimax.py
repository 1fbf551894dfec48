"""MiniMax Hailuo video generation (flavor ``minimax``).

Followed: MiniMax API reference (platform.minimax.io/docs/api-reference): "Video Generation"
(``POST /v1/video_generation``), "Query Video Generation Task"
(``GET /v1/query/video_generation?task_id=``), "File Retrieve" (``GET /v1/files/retrieve``) and
the ``base_resp`` status codes; QuantumNous/new-api relay/channel/task/hailuo/{adaptor,
constants,models}.go (the payload, resolution words, status words, the file lookup).

Translation::

    model, prompt   -> model, prompt
    seconds         -> duration, always (6 or 10)
    size            -> resolution: the short side's tier in MiniMax's words (512P, 720P, 768P,
                       1080P). Hailuo has no aspect ratio of its own to ask.
    image           -> first_frame_image (a data URL or an https URL); metadata
                       img_url/first_frame_url and last_frame_url (last_frame_image) too
    audio           -> none: Hailuo makes no sound, and the flavor does not declare audio
    metadata        -> top-level fields; prompt_extend -> prompt_optimizer,
                       watermark -> aigc_watermark

Errors arrive on HTTP 200 as often as not: every answer's ``base_resp.status_code`` is read,
whatever the status line says. Result: the task names a ``file_id``; each download asks
``/files/retrieve`` for a fresh signed ``download_url`` (valid an hour) and fetches that with no
credentials. The rendered width and height are reported; the seconds are not. No cancel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

from gateway.ledger.sizes import Size
from gateway.upstreams.auth import Bearer
from gateway.upstreams.base import (
    UpstreamAmbiguous,
    UpstreamError,
    UpstreamGone,
    UpstreamRefused,
    UpstreamUnavailable,
)
from gateway.upstreams.flavor import CREATE, IMAGE, ContentStream, CreateRequest, Flavor, Submitted
from gateway.upstreams.http import UpstreamHTTP
from gateway.upstreams.native import (
    COMPLETED,
    FAILED,
    IMAGE_KEYS,
    IN_PROGRESS,
    QUEUED,
    asset_url,
    failure,
    field,
    first_frame,
    last_frame,
    merged,
    pixels,
    running,
    status_of,
    text,
)
from gateway.upstreams.outcome import Asset, Completed, PollOutcome, Unreachable
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient

STATUSES = {"preparing": QUEUED, "queueing": QUEUED, "processing": IN_PROGRESS,
            "success": COMPLETED, "fail": FAILED}
PRICED = frozenset({"model", "duration", "resolution"})
RESERVED = frozenset({"prompt", "first_frame_image", "last_frame_image", "callback_url",
                      *IMAGE_KEYS})
RENAME = {"prompt_extend": "prompt_optimizer", "watermark": "aigc_watermark"}
# base_resp codes that blame the request (invalid parameters, sensitive input or output);
# any other (auth 1004, rate 1002, balance 1008, server 1000…) is ours or MiniMax's.
_REFUSED_CODES = frozenset({2013, 1026, 1027})
_NOT_FOUND = 2013
FILES = "/files/retrieve"

AUTH = Bearer


def read_error(body: Any) -> tuple[str | None, str | None, str | None]:
    """``{"base_resp": {"status_code", "status_msg"}}``."""
    base = field(body, "base_resp")
    return text(field(base, "status_msg")), text(field(base, "status_code")), None


ERRORS = read_error


def status_code(answer: object) -> int:
    """``base_resp.status_code``: 0 when all is well (or it is not there), -1 when unreadable."""
    code = field(answer, "base_resp", "status_code")
    if code is None:
        return 0
    written = text(code)
    return int(written) if written and written.lstrip("-").isdigit() else -1


def resolution(size: Size) -> str:
    return f"{size.short}P"


def body(request: CreateRequest) -> dict[str, Any]:
    own: dict[str, object] = {"model": request.model, "prompt": request.prompt,
                              "duration": request.seconds, "resolution": resolution(request.size)}
    if lead := first_frame(request):
        own["first_frame_image"] = lead
    if tail := last_frame(request):
        own["last_frame_image"] = tail
    return merged(request.metadata, own, priced=PRICED, reserved=RESERVED, rename=RENAME)


def outcome(http: UpstreamHTTP, upstream_id: str, task: object, base_url: str) -> PollOutcome:
    word = text(field(task, "status"))
    state = status_of(STATUSES, word)
    code = status_code(task)
    if state == FAILED:
        message = field(task, "base_resp", "status_msg") if code else None
        return failure(http, upstream_id, code or word, message)
    if code != 0:
        return Unreachable("the upstream answered the poll with an error")
    if state == COMPLETED:
        file_id = text(field(task, "file_id"))
        if file_id is None:
            return Unreachable("the task succeeded without a file")
        lookup = f"{base_url}{FILES}?{urlencode({'file_id': file_id})}"
        size = pixels(field(task, "video_width"), field(task, "video_height"))
        return Completed(assets=(Asset("video", lookup),), size=size)
    return running(state)


class MiniMaxFlavor:
    capabilities = frozenset({CREATE, IMAGE})
    priced_fields = PRICED

    def __init__(self, http: UpstreamHTTP) -> None:
        self.http = http

    async def create(self, request: CreateRequest, key: str) -> Submitted:
        answer = await self.http.json(
            self.http.request("POST", "/video_generation", key, json=body(request)), "create")
        code = status_code(answer)
        if code in _REFUSED_CODES:
            message = self.http.public(code, field(answer, "base_resp", "status_msg"))
            raise UpstreamRefused(400, message)
        if code != 0:
            raise UpstreamUnavailable(f"upstream refused the create ({code})")
        task_id = text(field(answer, "task_id"))
        if task_id is None:
            raise UpstreamAmbiguous("the upstream accepted the task without an id")
        return Submitted(task_id)

    async def poll(self, upstream_id: str, state: Mapping[str, str], key: str) -> PollOutcome:
        query = f"/query/video_generation?{urlencode({'task_id': upstream_id})}"
        try:
            task = await self.http.json(self.http.request("GET", query, key), "poll",
                                        gone_on_404=True, ids=(upstream_id,))
        except UpstreamError as exc:
            return Unreachable(str(exc))
        return outcome(self.http, upstream_id, task, self.http.base_url)

    async def cancel(self, upstream_id: str, state: Mapping[str, str], key: str) -> None:
        return None  # MiniMax offers no way to stop a task

    @asynccontextmanager
    async def content(self, upstream_id: str, state: Mapping[str, str], key: str, *,
                      variant: str, url: str | None, range_header: str | None,
                      ) -> AsyncIterator[ContentStream]:
        lookup = url if variant == "video" else None
        if variant == "video" and lookup is None:
            lookup = await asset_url(self.poll(upstream_id, state, key), "video")
        if lookup is None:
            raise UpstreamGone("the upstream offers no such download")
        link = await self.download_url(lookup, key, upstream_id)
        headers = {"Range": range_header} if range_header else {}
        async with self.http.open(self.http.request("GET", link, None, headers=headers)) as stream:
            yield stream

    async def download_url(self, lookup: str, key: str, upstream_id: str) -> str:
        """A fresh signed link for the file a lookup URL names (a stored link is used as is)."""
        if not lookup.startswith(f"{self.http.base_url}{FILES}?"):
            return lookup
        found = await self.http.json(self.http.request("GET", lookup, key), "content",
                                     gone_on_404=True, ids=(upstream_id,))
        code = status_code(found)
        if code == _NOT_FOUND:
            raise UpstreamGone("the upstream no longer has the file")
        link = text(field(found, "file", "download_url"))
        if code != 0 or link is None:
            raise UpstreamUnavailable(f"upstream refused the file lookup ({code})")
        return link


def make(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
         secrets: UpstreamSecrets | None = None) -> Flavor:
    return MiniMaxFlavor(UpstreamHTTP(name, base_url, client, timeout_s, AUTH(), secrets=secrets,
                                      errors=ERRORS))
