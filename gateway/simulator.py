"""In-memory simulator of an OpenAI-format video provider (``openai`` and ``compat`` dialects).

Square-bracket directives in the prompt steer single jobs (failures, slow or broken responses;
besides those of ``gateway.simulators.common``: ``[content-fail:N]`` answers the job's first N
downloads with 500, ``[content-delay:S]`` holds each download S seconds before answering, and
``[expires:S]`` (openai) says the finished job's links die S seconds after completion,
``[poll-delay:S]`` holds each retrieve of the job S seconds);
``/_sim/...`` routes expose counters and let tests force state changes. The native vendor
flavors (§8 of the spec) live in ``gateway.simulators`` and share this module's content stream,
range handling and control routes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.simulators import VENDOR_FLAVORS, create_vendor_app

Endpoint = Callable[[Request], Awaitable[Response]]

FLAVORS = ("openai", "compat", *VENDOR_FLAVORS)
CHUNK = 64 * 1024
# size 0x18, "ftyp", major brand "isom", minor version 0x200, compatible brands isom/iso2.
FTYP_BOX = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
_BLOCK = 64  # blake2b digest size: one hash call yields one filler block
SECRET_DETAIL = "internal upstream detail key=sk-upstream-secret"
EXPIRING_URL_TTL_S = 2.0
_DIRECTIVE = re.compile(r"\[([a-z-]+)(?::([^\]]*))?\]")
_FAILURE = {"code": "video_generation_failed", "message": "The video could not be generated."}
_COMPAT_STATUS = {"queued": "processing", "in_progress": "processing", "completed": "succeeded"}


def _filler(job_id: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of the stream, computed per block so no range needs the whole file."""
    first, last = start // _BLOCK, (end + _BLOCK - 1) // _BLOCK
    blocks = b"".join(
        hashlib.blake2b(f"{job_id}:{i}".encode()).digest() for i in range(first, last)
    )
    data = bytearray(blocks[start - first * _BLOCK : end - first * _BLOCK])
    if start < len(FTYP_BOX):
        head = FTYP_BOX[start : min(end, len(FTYP_BOX))]
        data[: len(head)] = head
    return bytes(data)


def iter_content(
    job_id: str, size: int, start: int, end: int, chunk: int = CHUNK
) -> Iterator[bytes]:
    """Yield bytes [start, end) of a job's deterministic video, clamped to ``size``."""
    end = min(end, size)
    for pos in range(start, end, chunk):
        yield _filler(job_id, pos, min(pos + chunk, end))


def expected_content(job_id: str, size: int) -> bytes:
    """The whole video a job serves; meant for comparing small downloads in tests."""
    return b"".join(iter_content(job_id, size, 0, size))


@cache
def playable_content() -> bytes:
    """What a ``[playable]`` job serves: a real one-second H.264 MP4 (64x36), for clients
    that decode the video (a browser's ``<video>``), where the byte stream would not do."""
    return (Path(__file__).parent / "simulators" / "playable.mp4").read_bytes()


@cache
def _image_bytes(fmt: str) -> bytes:
    # Real encoded images, so clients that decode previews are exercised for real.
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (40, 90, 160)).save(buffer, format=fmt, quality=80)
    return buffer.getvalue()


class Unsatisfiable(Exception):
    """The requested byte range lies outside the resource."""


def parse_range(header: str | None, total: int) -> tuple[int, int] | None:
    """Return [start, end) for a single-range header; None means serve the whole body."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if match is None or match.group(1) == match.group(2) == "":
        return None  # absent, multi-range or malformed: RFC 9110 allows ignoring it
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or total == 0:
            raise Unsatisfiable
        return max(0, total - suffix), total
    start = int(first)
    stop = total if last == "" else min(int(last) + 1, total)
    if start >= total or stop <= start:
        raise Unsatisfiable
    return start, stop


def _error(
    status: int, message: str, code: str | None, param: str | None = None, **extra: str
) -> JSONResponse:
    """OpenAI error envelope; ``extra`` may carry ``kind`` (the type) and ``retry_after``."""
    kind = extra.get("kind", "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    retry = {"Retry-After": extra["retry_after"]} if "retry_after" in extra else None
    return JSONResponse(body, status_code=status, headers=retry)


def _upstream_failure(status: int) -> JSONResponse:
    # The message carries a fake secret so tests can prove the gateway never relays it.
    message = f"The server had an error processing the request ({SECRET_DETAIL})."
    if status == 429:
        return _error(status, message, "rate_limit_exceeded", kind="requests", retry_after="1")
    return _error(status, message, "server_error", kind="server_error")


def _leaky_text(request: Request, name: str, job_id: str | None = None) -> str:
    """A careless vendor's error text: its key, address, name and the job's id, all quoted."""
    key, base = request.state.api_key, str(request.base_url).rstrip("/")
    job = f" job {job_id} ({base}/v1/videos/{job_id})" if job_id else ""
    return (f"{name} worker gpu-07.{name}.internal ({request.url.netloc}) failed{job}: "
            f"upstream auth 'Authorization: Bearer {key}' api_key={key}; raw key {key}")


def _not_found(job_id: str) -> JSONResponse:
    return _error(404, f"Video with id '{job_id}' not found.", "not_found")


def _breaking(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Pass chunks through until ``limit`` bytes, then fail so the connection drops."""
    sent = 0
    for piece in chunks:
        if sent + len(piece) >= limit:
            yield piece[: limit - sent]
            raise ConnectionAbortedError("simulated broken transfer")
        sent += len(piece)
        yield piece


class Served(Protocol):
    """What a ranged download needs of a job: the stream's seed and the job's directives."""

    @property
    def id(self) -> str: ...

    @property
    def directives(self) -> dict[str, str]: ...


def _ranged(request: Request, total: int, media_type: str, job: Served | None) -> Response:
    """Serve a video (job given) or a cached image with single-range support."""
    try:
        span = parse_range(request.headers.get("range"), total)
    except Unsatisfiable:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{total}"})
    start, end = span or (0, total)
    headers = {"Content-Length": str(end - start), "Accept-Ranges": "bytes"}
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    if job is None:
        body: Iterator[bytes] = iter([_image_bytes(media_type.split("/")[1].upper())[start:end]])
    elif "playable" in job.directives:
        body = iter([playable_content()[start:end]])
    else:
        body = iter_content(job.id, total, start, end)
        if "content-break" in job.directives:
            body = _breaking(body, (end - start) // 2)
    return StreamingResponse(body, 206 if span else 200, headers, media_type)


@dataclass
class Job:
    id: str
    prompt: str
    model: str
    size: str
    seconds: str
    key: str
    duration: float
    content_size: int
    directives: dict[str, str]
    created: float = field(default_factory=time.time)
    remixed_from: str | None = None
    forced: str | None = None
    forced_at: float | None = None
    deleted: bool = False
    downloads: int = 0
    input_reference_bytes: int | None = None
    input_reference_json: Any = None
    metadata: str | None = None

    def phase(self, now: float) -> tuple[str, int, float | None]:
        """(canonical status, progress, finish time) at ``now``; status follows wall-clock."""
        if self.forced is not None and self.forced_at is not None:
            return self.forced, 100 if self.forced == "completed" else 0, self.forced_at
        # [progress:N] pins what a running job reports, as providers that sit at 100% while
        # they store the result do.
        pinned = self.directives.get("progress")
        if "never" in self.directives:
            return "in_progress", int(pinned or 50), None
        elapsed = now - self.created
        if elapsed >= self.duration:
            end = self.created + self.duration
            failing = "fail" in self.directives or "fail-leaky" in self.directives
            return ("failed", 99, end) if failing else ("completed", 100, end)
        if elapsed < 0.1 * self.duration:
            return "queued", 0, None
        progress = min(99, int(100 * (elapsed / self.duration - 0.1) / 0.9))
        return "in_progress", int(pinned or progress), None

    def summary(self, now: float) -> dict[str, Any]:
        """What the stats route reports about this job."""
        echoed = ("prompt", "model", "size", "seconds", "key", "metadata", "input_reference_json")
        summary = {name: getattr(self, name) for name in echoed}
        references = (self.input_reference_bytes, self.input_reference_json)
        summary["has_input_reference"] = any(ref is not None for ref in references)
        summary["input_reference_bytes"] = self.input_reference_bytes or 0
        summary["status"] = "deleted" if self.deleted else self.phase(now)[0]
        return summary


async def _download_fault(job: Job) -> Response | None:
    """What ``[content-delay:S]`` and ``[content-fail:N]`` make of one download."""
    job.downloads += 1
    if "content-delay" in job.directives:
        await asyncio.sleep(float(job.directives["content-delay"] or 1))
    if job.downloads <= int(job.directives.get("content-fail") or 0):
        return _upstream_failure(500)
    return None


def _directives(prompt: str) -> dict[str, str]:
    return {name: value or "" for name, value in _DIRECTIVE.findall(prompt)}


def _text(value: Any, default: str) -> str:
    return default if value is None else str(value)


async def _read_create_body(request: Request) -> dict[str, Any]:
    """Job fields from a multipart (optionally with a file) or JSON create request."""
    ctype = request.headers.get("content-type", "")
    ref_bytes: int | None = None
    ref_json: Any = None
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        async with request.form() as form:
            upload = form.get("input_reference")
            if isinstance(upload, UploadFile):
                ref_bytes = len(await upload.read())
            fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    else:
        fields = await request.json()
        if not isinstance(fields, dict):
            raise ValueError("body must be a JSON object")
        ref_json = fields.get("input_reference")
    metadata = fields.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        metadata = json.dumps(metadata)
    defaults = {"prompt": "", "model": "sora-2", "size": "720x1280", "seconds": "4"}
    body: dict[str, Any] = {k: _text(fields.get(k), v) for k, v in defaults.items()}
    float(body["seconds"])  # reject non-numeric durations up front, as the real API does
    body.update(metadata=metadata, input_reference_bytes=ref_bytes, input_reference_json=ref_json)
    return body


async def _read_derive_body(request: Request) -> tuple[dict[str, Any], int | None]:
    """Fields of an edit/extension request and the size of an uploaded source video."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            fields: dict[str, Any] = {}
            upload_bytes = None
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    upload_bytes = len(await value.read())
                elif key.startswith("video["):
                    fields.setdefault("video", {})[key[6:-1]] = value
                else:
                    fields[key] = value
            return fields, upload_bytes
    payload = await request.json()
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    return payload, None


class _Simulator:
    def __init__(
        self, flavor: str, duration_s: float, api_keys: list[str] | None, content_size: int,
        name: str = "simvendor",
    ) -> None:
        self.flavor = flavor
        self.name = name  # what this vendor calls itself in its careless error texts
        self.duration_s = duration_s
        self.api_keys = api_keys
        self.content_size = content_size
        self.reset_state()

    def reset_state(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.creates = 0
        self.retrieves: defaultdict[str, int] = defaultdict(int)
        self.in_flight: defaultdict[str, int] = defaultdict(int)
        self.max_in_flight: defaultdict[str, int] = defaultdict(int)
        # Retrieves of any job at once, and the most seen: what a poll cap bounds.
        self.retrieving = 0
        self.most_retrieving = 0
        self.content_requests = 0
        self.remixes: list[dict[str, str]] = []
        self.derived: list[dict[str, Any]] = []
        self.characters: dict[str, dict[str, Any]] = {}
        self.deletes: list[str] = []
        self.fault_status: int | None = None
        self.fault_count = 0
        self.retrieve_fault_status: int | None = None

    def authed(self, handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            scheme, _, key = request.headers.get("authorization", "").partition(" ")
            key = key.strip()
            allowed = self.api_keys is None or key in self.api_keys
            if scheme.lower() != "bearer" or not key or not allowed:
                return _error(401, "Invalid API key", "invalid_api_key")
            request.state.api_key = key
            return await handler(request)

        return endpoint

    def live_job(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return None if job is None or job.deleted else job

    def failure(self, job: Job, request: Request) -> dict[str, Any] | str:
        if "fail-leaky" in job.directives:
            return {"code": "E_WORKER_7731_OOM",
                    "message": _leaky_text(request, self.name, job.id)}
        return "generation failed" if "string-error" in job.directives else _FAILURE

    def render(self, job: Job, request: Request) -> dict[str, Any]:
        status, progress, finished = job.phase(time.time())
        done = status in ("completed", "failed")
        completed_at = int(finished) if done and finished is not None else None
        body: dict[str, Any] = {
            "id": job.id,
            "object": "video" if self.flavor == "openai" else "video.task",
            "model": job.model,
            "status": status if done or "unknown-status" not in job.directives else "weird_state",
            "progress": progress,
            "created_at": int(job.created),
            "completed_at": completed_at,
            "size": job.size,
            "seconds": job.seconds if self.flavor == "openai" else int(float(job.seconds)),
            "prompt": job.prompt,
            "remixed_from_video_id": job.remixed_from,
        }
        if self.flavor == "openai":
            lifetime = int(job.directives.get("expires") or 3600)
            expires = completed_at + lifetime if completed_at and status == "completed" else None
            body.update(quality="standard", expires_at=expires)
            body["error"] = self.failure(job, request) if status == "failed" else None
            return body
        body["status"] = _COMPAT_STATUS.get(body["status"], body["status"])
        if status == "completed":
            url_field = "url" if "url-field" in job.directives else "video_url"
            body[url_field] = f"{str(request.base_url).rstrip('/')}/files/{job.id}.mp4"
        if status == "failed":
            body["error"] = self.failure(job, request)
        return body

    async def admission(self, request: Request, prompt: str,
                        directives: dict[str, str]) -> Response | None:
        """Apply the prompt directives that decide how a create-like request is answered."""
        if "hang" in directives:
            await asyncio.sleep(float(directives["hang"] or 0))
        if "status" in directives:
            return _upstream_failure(int(directives["status"]))
        if "reject" in directives:
            message = "Your request was blocked by our moderation system."
            return _error(400, message, "moderation_blocked", param="prompt")
        if "reject-leaky" in directives:
            return _error(400, _leaky_text(request, self.name), "ContentSafety.Rejected.4471",
                          param="worker_pool_gpu07")
        if not prompt.strip():
            return _error(400, "Missing required parameter: 'prompt'.", None, param="prompt")
        return None

    def new_job(self, request: Request, body: dict[str, Any], directives: dict[str, str]) -> Job:
        job = Job(
            id=f"sim_{uuid.uuid4().hex}",
            key=request.state.api_key,
            duration=float(directives.get("duration") or self.duration_s),
            content_size=len(playable_content()) if "playable" in directives
            else int(directives.get("size") or self.content_size),
            directives=directives,
            **body,
        )
        self.jobs[job.id] = job
        return job

    async def create(self, request: Request) -> Response:
        self.creates += 1
        try:
            body = await _read_create_body(request)
        except (ValueError, MultiPartException):
            return _error(400, "The request body could not be parsed.", None)
        if self.fault_status is not None and self.fault_count > 0:
            self.fault_count -= 1
            return _upstream_failure(self.fault_status)
        directives = _directives(body["prompt"])
        if (refusal := await self.admission(request, body["prompt"], directives)) is not None:
            return refusal
        return JSONResponse(self.render(self.new_job(request, body, directives), request))

    async def retrieve(self, request: Request) -> Response:
        job_id = request.path_params["video_id"]
        self.retrieves[job_id] += 1
        self.in_flight[job_id] += 1
        self.max_in_flight[job_id] = max(self.max_in_flight[job_id], self.in_flight[job_id])
        self.retrieving += 1
        self.most_retrieving = max(self.most_retrieving, self.retrieving)
        try:
            # Keep the request in flight briefly so overlapping polls become measurable;
            # [poll-delay:S] keeps it S seconds.
            live = self.live_job(job_id)
            await asyncio.sleep(float(live.directives.get("poll-delay", 0.01)) if live else 0.01)
            if self.retrieve_fault_status is not None:
                return _upstream_failure(self.retrieve_fault_status)
            job = self.live_job(job_id)
            if job is None:
                return _not_found(job_id)
            if "poll-status" in job.directives:
                return _upstream_failure(int(job.directives["poll-status"]))
            return JSONResponse(self.render(job, request))
        finally:
            self.in_flight[job_id] -= 1
            self.retrieving -= 1

    async def content(self, request: Request) -> Response:
        self.content_requests += 1
        job_id = request.path_params["video_id"]
        job = self.live_job(job_id)
        if job is None:
            return _not_found(job_id)
        if job.phase(time.time())[0] != "completed":
            return _error(409, "Video is not ready yet.", "video_not_ready")
        if (refusal := await _download_fault(job)) is not None:
            return refusal
        variant = request.query_params.get("variant", "video")
        if variant == "video":
            return _ranged(request, job.content_size, "video/mp4", job)
        if variant in ("thumbnail", "spritesheet"):
            media = "image/webp" if variant == "thumbnail" else "image/jpeg"
            return _ranged(request, len(_image_bytes(media.split("/")[1].upper())), media, None)
        return _error(400, f"Invalid variant '{variant}'.", "invalid_value", param="variant")

    async def public_file(self, request: Request) -> Response:
        self.content_requests += 1
        job = self.live_job(request.path_params["job_id"])
        now = time.time()
        status, _, finished = job.phase(now) if job else ("missing", 0, None)
        if job is None or status != "completed" or finished is None:
            return Response("Not Found", status_code=404, media_type="text/plain")
        if "expire-url" in job.directives and now > finished + EXPIRING_URL_TTL_S:
            return Response("Expired", status_code=404, media_type="text/plain")
        if (refusal := await _download_fault(job)) is not None:
            return refusal
        return _ranged(request, job.content_size, "video/mp4", job)

    async def remix(self, request: Request) -> Response:
        source_id = request.path_params["video_id"]
        source = self.live_job(source_id)
        if source is None or source.phase(time.time())[0] != "completed":
            message = f"Video '{source_id}' does not exist or is not completed."
            return _error(400, message, "invalid_video", param="video_id")
        try:
            payload = await request.json()
        except ValueError:
            return _error(400, "The request body could not be parsed.", None)
        prompt = _text(payload.get("prompt") if isinstance(payload, dict) else None, "")
        directives = _directives(prompt)
        if (refusal := await self.admission(request, prompt, directives)) is not None:
            return refusal
        inherited = {"model": source.model, "size": source.size, "seconds": source.seconds}
        body = {"prompt": prompt, "remixed_from": source.id, **inherited}
        job = self.new_job(request, body, directives)
        self.remixes.append({"new_id": job.id, "source_id": source.id})
        return JSONResponse(self.render(job, request))

    async def derive(self, request: Request) -> Response:
        """Edits and extensions: a new job from a completed video (by id) or an upload."""
        kind = "extension" if request.url.path.endswith("/extensions") else "edit"
        try:
            fields, upload_bytes = await _read_derive_body(request)
        except (ValueError, MultiPartException):
            return _error(400, "The request body could not be parsed.", None)
        source: Job | None = None
        reference = fields.get("video")
        if upload_bytes is None:
            source_id = reference.get("id") if isinstance(reference, dict) else None
            source = self.live_job(str(source_id))
            if source is None or source.phase(time.time())[0] != "completed":
                message = f"Video '{source_id}' does not exist or is not completed."
                return _error(400, message, "invalid_video", param="video")
        prompt = _text(fields.get("prompt"), "")
        directives = _directives(prompt)
        if (refusal := await self.admission(request, prompt, directives)) is not None:
            return refusal
        model = source.model if source else _text(fields.get("model"), "sora-2")
        size = source.size if source else _text(fields.get("size"), "720x1280")
        seconds = _text(fields.get("seconds"), source.seconds if source else "4")
        body = {"prompt": prompt, "model": model, "size": size, "seconds": seconds}
        job = self.new_job(request, body, directives)
        self.derived.append({"kind": kind, "new_id": job.id,
                             "source_id": source.id if source else None,
                             "upload_bytes": upload_bytes or 0, "seconds": seconds})
        return JSONResponse(self.render(job, request))

    async def create_character(self, request: Request) -> Response:
        async with request.form() as form:
            name, upload = form.get("name"), form.get("video")
            if not isinstance(name, str) or not isinstance(upload, UploadFile):
                return _error(400, "'name' and a 'video' file are required.", None)
            if (refusal := await self.admission(request, name, _directives(name))) is not None:
                return refusal
            size = len(await upload.read())
        character = {"id": f"char_{uuid.uuid4().hex}", "name": name,
                     "created_at": int(time.time())}
        self.characters[str(character["id"])] = {**character, "video_bytes": size,
                                            "key": request.state.api_key}
        return JSONResponse(character)

    async def get_character(self, request: Request) -> Response:
        character = self.characters.get(request.path_params["character_id"])
        if character is None:
            return _not_found(request.path_params["character_id"])
        return JSONResponse({k: character[k] for k in ("id", "name", "created_at")})

    async def delete(self, request: Request) -> Response:
        job_id = request.path_params["video_id"]
        job = self.live_job(job_id)
        if job is None:
            return _not_found(job_id)
        job.deleted = True  # kept so stats still describe the deleted job
        self.deletes.append(job_id)
        return JSONResponse({"id": job_id, "object": "video.deleted", "deleted": True})

    async def list_jobs(self, request: Request) -> Response:
        live = [self.render(j, request) for j in reversed(self.jobs.values()) if not j.deleted]
        ids = [video["id"] for video in live] or [None]
        envelope = {"object": "list", "data": live, "first_id": ids[0], "last_id": ids[-1]}
        return JSONResponse({**envelope, "has_more": False})

    async def stats(self, request: Request) -> Response:
        jobs = {job.id: job.summary(time.time()) for job in self.jobs.values()}
        counters = {"creates": self.creates, "content_requests": self.content_requests}
        retrieves = {"retrieves": self.retrieves, "max_concurrent_retrieves": self.max_in_flight,
                     "most_retrieving": self.most_retrieving}
        lists = {"remixes": self.remixes, "deletes": self.deletes, "derived": self.derived,
                 "characters": self.characters}
        return JSONResponse({**counters, **retrieves, **lists, "jobs": jobs})

    async def reset(self, request: Request) -> Response:
        self.reset_state()
        return JSONResponse({"ok": True})

    async def finish(self, request: Request) -> Response:
        job_id = request.path_params["video_id"]
        job = self.jobs.get(job_id)
        if job is None:
            return _not_found(job_id)
        status = (await request.json()).get("status", "completed")
        if status not in ("completed", "failed"):
            return _error(400, "status must be 'completed' or 'failed'.", None, param="status")
        job.forced, job.forced_at = status, time.time()
        return JSONResponse({"id": job_id, "status": status})

    async def faults(self, request: Request) -> Response:
        """``create_status`` fails the next ``count`` creates; ``retrieve_status`` fails every
        retrieve until it is set to null. Each is changed only when the body names it."""
        payload = await request.json()
        if "create_status" in payload:
            status = payload["create_status"]
            self.fault_status = None if status is None else int(status)
            self.fault_count = int(payload.get("count", 1)) if status is not None else 0
        if "retrieve_status" in payload:
            status = payload["retrieve_status"]
            self.retrieve_fault_status = None if status is None else int(status)
        return JSONResponse({"create_status": self.fault_status, "count": self.fault_count,
                             "retrieve_status": self.retrieve_fault_status})

    def routes(self) -> list[Route]:
        routes = [
            Route("/v1/videos", self.authed(self.create), methods=["POST"]),
            Route("/v1/videos", self.authed(self.list_jobs), methods=["GET"]),
            Route("/v1/videos/edits", self.authed(self.derive), methods=["POST"]),
            Route("/v1/videos/extensions", self.authed(self.derive), methods=["POST"]),
            Route("/v1/videos/characters", self.authed(self.create_character), methods=["POST"]),
            Route("/v1/videos/characters/{character_id}", self.authed(self.get_character),
                  methods=["GET"]),
            Route("/v1/videos/{video_id}", self.authed(self.retrieve), methods=["GET"]),
            Route("/v1/videos/{video_id}", self.authed(self.delete), methods=["DELETE"]),
            Route("/v1/videos/{video_id}/remix", self.authed(self.remix), methods=["POST"]),
            Route("/_sim/stats", self.stats, methods=["GET"]),
            Route("/_sim/reset", self.reset, methods=["POST"]),
            Route("/_sim/jobs/{video_id}/finish", self.finish, methods=["POST"]),
            Route("/_sim/faults", self.faults, methods=["POST"]),
        ]
        if self.flavor == "openai":
            content = self.authed(self.content)
            routes.append(Route("/v1/videos/{video_id}/content", content, methods=["GET"]))
        else:
            routes.append(Route("/files/{job_id}.mp4", self.public_file, methods=["GET"]))
        return routes


def create_simulator_app(
    flavor: str = "openai",
    *,
    duration_s: float = 2.0,
    api_keys: list[str] | None = None,
    content_size: int = 256 * 1024,
    name: str = "simvendor",
) -> Starlette:
    """Build the simulator; ``app.state.simulator`` exposes its state to in-process tests."""
    if flavor not in FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r}; expected one of {FLAVORS}")
    if flavor in VENDOR_FLAVORS:
        return create_vendor_app(
            flavor, duration_s=duration_s, api_keys=api_keys, content_size=content_size
        )
    simulator = _Simulator(flavor, duration_s, api_keys, content_size, name)
    app = Starlette(routes=simulator.routes())
    app.state.simulator = simulator
    return app


def run_simulator(
    host: str = "127.0.0.1",
    port: int = 9100,
    flavor: str = "openai",
    duration_s: float = 2.0,
    api_keys: list[str] | None = None,
    name: str = "simvendor",
) -> None:
    app = create_simulator_app(flavor, duration_s=duration_s, api_keys=api_keys, name=name)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _main() -> None:
    parser = argparse.ArgumentParser(description="Run the local video provider simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--flavor", choices=FLAVORS, default="openai")
    parser.add_argument("--duration", type=float, default=2.0, help="default job seconds")
    parser.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                        help="accept only this key (repeatable; kling: ACCESS_KEY:SECRET_KEY)")
    parser.add_argument("--name", default="simvendor",
                        help="what the vendor calls itself in the [fail-leaky] and "
                             "[reject-leaky] error texts")
    args = parser.parse_args()
    run_simulator(args.host, args.port, args.flavor, args.duration, args.api_keys, args.name)


if __name__ == "__main__":
    _main()
