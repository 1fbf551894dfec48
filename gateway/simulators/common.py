"""What every vendor simulator shares: the job clock, prompt directives, signed result links,
image-field checks and the ``/_sim/...`` control routes of ``gateway.simulator``.

Prompt directives (square brackets anywhere in the prompt), for every vendor unless its module
says otherwise:

- ``[fail]``: the job ends in the vendor's failure, with the vendor's error fields.
- ``[never]``: the job stays running until ``/_sim/jobs/{id}/finish``.
- ``[unknown-status]``: while running, the status field carries a word the vendor never documents.
- ``[render-seconds:N]`` / ``[render-resolution:R]``: the result reports N seconds / resolution R
  as rendered, whatever was asked (for settling on what was made).
- ``[expire-url]``: result links die ``EXPIRING_URL_TTL_S`` seconds after they are issued.
- ``[duration:S]``: the job takes S wall-clock seconds; ``[size:N]``: the video has N bytes.
- ``[status:N]``: the create answers HTTP N in the vendor's error shape; ``[hang:S]`` delays it;
  ``[reject]``: the create is refused by the vendor's moderation.
- ``[poll-status:N]``: every poll of the job answers HTTP N; ``[content-break]``: downloads drop
  halfway through.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.simulator import EXPIRING_URL_TTL_S, _directives, _image_bytes, _ranged

Endpoint = Callable[[Request], Awaitable[Response]]

CREATED, QUEUED, RUNNING = "created", "queued", "running"
SUCCEEDED, FAILED, CANCELLED, EXPIRED = "succeeded", "failed", "cancelled", "expired"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})
# Result assets a job can serve through its signed links: extension and media type.
ASSETS = {"video": ("mp4", "video/mp4"), "cover": ("jpg", "image/jpeg"),
          "last_frame": ("png", "image/png")}
_DATA_URL = re.compile(r"data:image/[a-z0-9.+-]+;base64,(.+)", re.DOTALL)
_STORAGE_ERROR = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>" \
                 "<Message>{message}</Message></Error>"


@dataclass
class VendorJob:
    id: str
    model: str
    prompt: str
    key: str
    seconds: float
    resolution: str
    wall_s: float
    content_size: int
    directives: dict[str, str]
    body: dict[str, Any]  # the create request as received, inline images shortened
    kind: str = "text"
    image: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    forced: str | None = None
    forced_at: float | None = None
    cancelled_at: float | None = None
    deleted: bool = False
    asset: str = field(default_factory=lambda: uuid.uuid4().hex)
    extra: dict[str, Any] = field(default_factory=dict)  # what the vendor module keeps

    def stage(self, now: float) -> tuple[str, float | None]:
        """(stage, end time): the job advances with the wall clock unless forced or held."""
        if self.cancelled_at is not None:
            return CANCELLED, self.cancelled_at
        if self.forced is not None and self.forced_at is not None:
            return self.forced, self.forced_at
        if "never" in self.directives:
            return RUNNING, None
        elapsed = now - self.created
        if elapsed >= self.wall_s:
            return self._outcome(), self.created + self.wall_s
        if elapsed < 0.05 * self.wall_s:
            return CREATED, None
        return (QUEUED if elapsed < 0.1 * self.wall_s else RUNNING), None

    def _outcome(self) -> str:
        if "fail" in self.directives:
            return FAILED
        return EXPIRED if "expired" in self.directives else SUCCEEDED

    def word(self, now: float, words: dict[str, str], unknown: str) -> str:
        """The vendor's status word for the job now."""
        stage, _ = self.stage(now)
        if stage not in TERMINAL and "unknown-status" in self.directives:
            return unknown
        return words[stage]

    @property
    def rendered_seconds(self) -> float:
        return float(self.directives.get("render-seconds") or self.seconds)

    @property
    def rendered_resolution(self) -> str:
        return self.directives.get("render-resolution") or self.resolution


def image_kind(value: object) -> str | None:
    """``url``, ``data_url`` or ``base64`` for an image field's value; None if it is neither."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith(("http://", "https://")):
        return "url"
    match = _DATA_URL.fullmatch(value)
    if match is not None:
        return "data_url" if _decoded_size(match.group(1)) is not None else None
    return "base64" if _decoded_size(value) is not None else None


def describe_image(value: str) -> dict[str, Any]:
    """What the stats route reports about an image input (never the image itself)."""
    kind = image_kind(value)
    payload = value.split(",", 1)[1] if kind == "data_url" else value
    size = _decoded_size(payload) if kind in ("data_url", "base64") else 0
    return {"kind": kind, "bytes": size or 0}


def _decoded_size(text: str) -> int | None:
    try:
        return len(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return None


def redacted(value: Any) -> Any:
    """A request body as the stats route shows it: long strings (inline images) shortened."""
    if isinstance(value, str) and len(value) > 200:
        return f"<{len(value)} chars>"
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


def bearer(request: Request, scheme: str = "bearer") -> str:
    """The credential of an ``Authorization: <scheme> <credential>`` header, or ''."""
    given, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential.strip() if given.lower() == scheme else ""


def digits(count: int) -> str:
    """A numeric id of ``count`` digits, as Kling, MiniMax and Vidu hand out."""
    return str(10 ** (count - 1) + secrets.randbelow(9 * 10 ** (count - 1)))


def millis(moment: float) -> int:
    return int(moment * 1000)


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def storage_error(status: int, code: str, message: str) -> Response:
    """The object store's own refusal of a result link (the shape OSS/TOS/S3 answer with)."""
    body = _STORAGE_ERROR.format(code=code, message=message)
    return Response(body, status_code=status, media_type="application/xml")


class VendorSimulator:
    """A vendor's jobs, counters and faults; subclasses speak the vendor's protocol."""

    flavor: ClassVar[str]
    base_path: ClassVar[str]
    words: ClassVar[dict[str, str]]
    unknown_word: ClassVar[str]
    link_ttl_s: ClassVar[float] = 24 * 3600.0

    def __init__(self, *, duration_s: float, api_keys: list[str] | None,
                 content_size: int) -> None:
        self.duration_s = duration_s
        self.api_keys = api_keys
        self.content_size = content_size
        self._link_secret = secrets.token_bytes(16)
        self.reset_state()

    def reset_state(self) -> None:
        self.jobs: dict[str, VendorJob] = {}
        self.assets: dict[str, str] = {}
        self.creates = 0
        self.retrieves: defaultdict[str, int] = defaultdict(int)
        self.in_flight: defaultdict[str, int] = defaultdict(int)
        self.max_in_flight: defaultdict[str, int] = defaultdict(int)
        self.content_requests = 0
        self.deletes: list[str] = []
        self.cancels: list[str] = []
        self.fault_status: int | None = None
        self.fault_count = 0

    # --- what each vendor module provides -------------------------------------------------
    def authenticate(self, request: Request) -> str | Response:
        """The caller's key (what stats report), or the vendor's refusal."""
        raise NotImplementedError

    def failure(self, status: int) -> Response:
        """A 429/5xx in the vendor's shape; its text carries a fake secret the gateway must hide."""
        raise NotImplementedError

    def refusal(self) -> Response:
        """The vendor's moderation refusal of a create."""
        raise NotImplementedError

    def not_found(self, job_id: str) -> Response:
        raise NotImplementedError

    def vendor_routes(self) -> list[Route]:
        raise NotImplementedError

    # --- shared behaviour -----------------------------------------------------------------
    def key_allowed(self, key: str) -> bool:
        return bool(key) and (self.api_keys is None or key in self.api_keys)

    def authed(self, handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            outcome = self.authenticate(request)
            if isinstance(outcome, Response):
                return outcome
            request.state.api_key = outcome
            return await handler(request)

        return endpoint

    def creating(self, handler: Endpoint) -> Endpoint:
        """A create route: authenticated, counted, and answering armed faults first."""

        async def endpoint(request: Request) -> Response:
            self.creates += 1
            if self.fault_status is not None and self.fault_count > 0:
                self.fault_count -= 1
                return self.failure(self.fault_status)
            return await handler(request)

        return self.authed(endpoint)

    async def read_json(self, request: Request) -> dict[str, Any] | None:
        try:
            payload = await request.json()
        except ValueError:  # also covers undecodable bytes
            return None
        return payload if isinstance(payload, dict) else None

    async def admission(self, prompt: str) -> Response | None:
        """The prompt directives that decide how a valid create is answered."""
        directives = _directives(prompt)
        if "hang" in directives:
            await asyncio.sleep(float(directives["hang"] or 0))
        if "status" in directives:
            return self.failure(int(directives["status"]))
        if "reject" in directives:
            return self.refusal()
        return None

    def new_job(self, request: Request, job_id: str, *, prompt: str, **fields: Any) -> VendorJob:
        directives = _directives(prompt)
        job = VendorJob(
            id=job_id, prompt=prompt, key=request.state.api_key, directives=directives,
            wall_s=float(directives.get("duration") or self.duration_s),
            content_size=int(directives.get("size") or self.content_size), **fields,
        )
        self.jobs[job.id] = job
        self.assets[job.asset] = job.id
        return job

    def live_job(self, job_id: str) -> VendorJob | None:
        job = self.jobs.get(job_id)
        return None if job is None or job.deleted else job

    def status_word(self, job: VendorJob, now: float | None = None) -> str:
        return job.word(time.time() if now is None else now, self.words, self.unknown_word)

    async def polled(self, job_id: str, answer: Callable[[VendorJob], Response]) -> Response:
        """A poll of one job: counted, briefly in flight (so overlaps show), then answered."""
        self.retrieves[job_id] += 1
        self.in_flight[job_id] += 1
        self.max_in_flight[job_id] = max(self.max_in_flight[job_id], self.in_flight[job_id])
        try:
            await asyncio.sleep(0.01)
            job = self.live_job(job_id)
            if job is None:
                return self.not_found(job_id)
            if "poll-status" in job.directives:
                return self.failure(int(job.directives["poll-status"]))
            return answer(job)
        finally:
            self.in_flight[job_id] -= 1

    # --- signed, expiring result links ----------------------------------------------------
    def link(self, request: Request, job: VendorJob, asset: str, issued: float) -> str:
        """A signed CDN-style URL for one of a job's assets, valid from ``issued`` for the
        vendor's link lifetime (``EXPIRING_URL_TTL_S`` under ``[expire-url]``)."""
        ttl = EXPIRING_URL_TTL_S if "expire-url" in job.directives else self.link_ttl_s
        expires = millis(issued + ttl)
        name = f"{job.asset}-{asset}"
        origin = str(request.base_url).rstrip("/")
        return (f"{origin}/_cdn/{name}.{ASSETS[asset][0]}?Expires={expires}"
                f"&Signature={self._signature(name, expires)}")

    def _signature(self, name: str, expires: int) -> str:
        message = f"{name}:{expires}".encode()
        return hmac.new(self._link_secret, message, hashlib.sha256).hexdigest()[:32]

    async def cdn(self, request: Request) -> Response:
        self.content_requests += 1
        stem = request.path_params["name"].rsplit(".", 1)[0]
        asset_id, _, asset = stem.rpartition("-")
        try:
            expires = int(request.query_params["Expires"])
        except (KeyError, ValueError):
            return storage_error(403, "AccessDenied", "Anonymous access is forbidden.")
        given = request.query_params.get("Signature", "")
        if not hmac.compare_digest(given, self._signature(stem, expires)):
            return storage_error(403, "SignatureDoesNotMatch", "The signature does not match.")
        if time.time() * 1000 > expires:
            return storage_error(403, "AccessDenied", "Request has expired.")
        job = self.live_job(self.assets.get(asset_id, ""))
        if job is None or asset not in ASSETS or job.stage(time.time())[0] != SUCCEEDED:
            return storage_error(404, "NoSuchKey", "The specified key does not exist.")
        media_type = ASSETS[asset][1]
        if asset == "video":
            return _ranged(request, job.content_size, media_type, job)
        size = len(_image_bytes(media_type.split("/")[1].upper()))
        return _ranged(request, size, media_type, None)

    # --- the control API shared with gateway.simulator ------------------------------------
    def control_job(self, job_id: str) -> VendorJob | None:
        """A job by its id, or by the last segment of a path-like id (Veo operation names)."""
        if job_id in self.jobs:
            return self.jobs[job_id]
        return next((j for j in self.jobs.values() if j.id.endswith("/" + job_id)), None)

    def summary(self, job: VendorJob, now: float) -> dict[str, Any]:
        stage, _ = job.stage(now)
        return {
            "prompt": job.prompt, "model": job.model, "key": job.key, "kind": job.kind,
            "seconds": job.seconds, "resolution": job.resolution,
            "rendered_seconds": job.rendered_seconds,
            "rendered_resolution": job.rendered_resolution,
            "has_input_reference": job.image is not None, "input_reference": job.image,
            "request": job.body, "stage": stage, "cancelled": job.cancelled_at is not None,
            "status": "deleted" if job.deleted else self.status_word(job, now),
        }

    async def stats(self, request: Request) -> Response:
        now = time.time()
        jobs = {job.id: self.summary(job, now) for job in self.jobs.values()}
        return JSONResponse({
            "flavor": self.flavor, "base_path": self.base_path, "creates": self.creates,
            "content_requests": self.content_requests, "retrieves": self.retrieves,
            "max_concurrent_retrieves": self.max_in_flight, "deletes": self.deletes,
            "cancels": self.cancels, "jobs": jobs,
        })

    async def reset(self, request: Request) -> Response:
        self.reset_state()
        return JSONResponse({"ok": True})

    async def finish(self, request: Request) -> Response:
        job = self.control_job(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        payload = await self.read_json(request) or {}
        status = payload.get("status", "completed")
        outcome = {"completed": SUCCEEDED, "succeeded": SUCCEEDED, "failed": FAILED}.get(status)
        if outcome is None:
            return JSONResponse({"error": "status must be 'completed' or 'failed'"}, 400)
        job.forced, job.forced_at = outcome, time.time()
        return JSONResponse({"id": job.id, "status": status})

    async def faults(self, request: Request) -> Response:
        payload = await self.read_json(request) or {}
        status = payload.get("create_status")
        self.fault_status = None if status is None else int(status)
        self.fault_count = int(payload.get("count", 1)) if status is not None else 0
        return JSONResponse({"create_status": self.fault_status, "count": self.fault_count})

    def routes(self) -> list[Route]:
        return [
            *self.vendor_routes(),
            Route("/_cdn/{name}", self.cdn, methods=["GET"]),
            Route("/_sim/stats", self.stats, methods=["GET"]),
            Route("/_sim/reset", self.reset, methods=["POST"]),
            Route("/_sim/jobs/{job_id:path}/finish", self.finish, methods=["POST"]),
            Route("/_sim/faults", self.faults, methods=["POST"]),
        ]
