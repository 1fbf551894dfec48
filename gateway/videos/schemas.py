from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from gateway.upstreams.sanitize import UPSTREAM_FAILED
from gateway.videos.models import Job


class VideoError(BaseModel):
    code: str
    message: str


def public_status(status: str) -> str:
    """A job persisted before its upstream call is, to the client, already queued."""
    return "queued" if status == "submitting" else status


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _expires_at(job: Job) -> float | None:
    """Once archived, the gateway's retention; before, when the upstream's link dies."""
    if job.archive_state in ("stored", "expired"):
        return job.retain_until
    return job.expires_at


class Video(BaseModel):
    """OpenAI's Video object; every field is always present, null where unset."""

    id: str
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    size: str
    seconds: str
    quality: str | None
    prompt: str | None
    remixed_from_video_id: str | None
    error: VideoError | None

    @classmethod
    def of(cls, job: Job) -> Video:
        error = None
        if job.status == "failed":
            error = VideoError(code=job.error_code or UPSTREAM_FAILED,
                               message=job.error_message or "The video could not be generated.")
        return cls(
            id=job.id, model=job.model,
            status=public_status(job.status),
            progress=job.progress, created_at=int(job.created_at),
            completed_at=_int(job.completed_at), expires_at=_int(_expires_at(job)),
            size=job.size, seconds=str(job.seconds), quality=job.quality, prompt=job.prompt,
            remixed_from_video_id=job.remixed_from_video_id, error=error,
        )

    @classmethod
    def json_of(cls, job: Job) -> bytes:
        """The Video of ``job`` as the JSON a client receives."""
        return cls.of(job).model_dump_json().encode()


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


# Request bodies, for the OpenAPI document only: the routes read them themselves (see
# videos.inputs), as multipart/form-data (what the SDK sends) or as JSON.
_TEXT = {"type": "string"}
_FILE = {"type": "string", "format": "binary"}
_CREATE = {
    "prompt": {"type": "string", "description": "What the video shows."},
    "model": {"type": "string", "default": "sora-2"},
    "seconds": {"type": "string", "default": "4", "description": "One of the model's lengths."},
    "size": {"type": "string", "default": "720x1280", "description": "Width x height."},
}
_REFERENCE = {"type": "object", "description": "An image by URL (http, https or a base64 data "
              "URL) or an upstream file id.",
              "properties": {"image_url": _TEXT, "file_id": _TEXT}}
_SOURCE = {"type": "object", "description": "One of the caller's videos.",
           "required": ["id"], "properties": {"id": _TEXT}}


def _body(required: list[str], multipart: dict[str, Any],
          json: dict[str, Any]) -> dict[str, Any]:
    def schema(properties: dict[str, Any]) -> dict[str, Any]:
        return {"schema": {"type": "object", "required": required, "properties": properties}}

    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": schema(multipart), "application/json": schema(json)}}}


CREATE_BODY = _body(
    ["prompt"],
    {**_CREATE, "input_reference": {**_FILE, "description": "A JPEG, PNG or WebP image whose "
                                                            "pixel size equals size."},
     "metadata": {"type": "string", "description": "A JSON object, passed on to upstreams "
                                                   "that take it."}},
    {**_CREATE, "input_reference": _REFERENCE, "metadata": {"type": "object"}},
)
_DERIVE = {**_CREATE, "seconds": {
    "type": "string", "description": "Extensions: the length to add, one of the model's. An "
    "edit is as long as its source and billed by it: an uploaded video by the shortest of the "
    "model's lengths it fits in."}}
DERIVE_BODY = _body(
    ["prompt"],
    {**_DERIVE, "video": {**_FILE, "description": "A video to start from, uploaded (MP4, "
                                                  "QuickTime or WebM)."},
     "video[id]": {"type": "string", "description": "Or one of the caller's videos."}},
    {**_DERIVE, "video": _SOURCE},
)
REMIX_BODY = _body(["prompt"], {"prompt": _TEXT}, {"prompt": _TEXT})
CHARACTER_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["video"],
               "properties": {"name": _TEXT, "video": _FILE}}}}}}
