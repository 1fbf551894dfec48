"""Flavor ``openai``: providers that speak the OpenAI Videos API.

Follows openai-python's ``resources/videos.py`` (create, retrieve, delete, remix, edits,
extensions, characters, download_content with ``variant``) and the Video object of its
``types/video.py``. Its ``compat`` dialect (resellers) lives in ``compat.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from gateway.upstreams.auth import Bearer
from gateway.upstreams.base import (
    Character,
    DeriveRequest,
    UpstreamAmbiguous,
    UpstreamError,
    VideoUpload,
)
from gateway.upstreams.flavor import (
    CANCEL,
    CHARACTERS,
    CREATE,
    EDIT,
    EXTEND,
    IMAGE,
    REMIX,
    ContentStream,
    CreateRequest,
    Submitted,
)
from gateway.upstreams.http import UpstreamHTTP
from gateway.upstreams.outcome import Asset, Completed, Failed, PollOutcome, Running, Unreachable
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient

# Every status word seen from OpenAI-format providers, folded onto four. Anything not listed
# is treated as still running: only an explicit failure ends a job.
STATUS_MAP = {
    "queued": "queued", "pending": "queued", "submitted": "queued", "waiting": "queued",
    "in_progress": "in_progress", "processing": "in_progress", "running": "in_progress",
    "generating": "in_progress",
    "completed": "completed", "succeeded": "completed", "success": "completed",
    "done": "completed", "finished": "completed",
    "failed": "failed", "failure": "failed", "error": "failed", "cancelled": "failed",
    "canceled": "failed", "expired": "failed", "rejected": "failed",
}
VARIANTS = ("video", "thumbnail", "spritesheet")


def normalize_status(raw: object) -> str:
    return STATUS_MAP.get(str(raw).strip().lower(), "in_progress")


class OpenAIFlavor:
    """One OpenAI-format upstream; its JSON is read and written here and nowhere else."""

    capabilities = frozenset({CREATE, IMAGE, REMIX, EDIT, EXTEND, CHARACTERS, CANCEL})
    priced_fields = frozenset({"model", "seconds", "size", "n"})

    def __init__(self, http: UpstreamHTTP) -> None:
        self.http = http

    # -- reading the vendor's job ------------------------------------------------------------
    def _job(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not data.get("id"):
            raise UpstreamAmbiguous("upstream answered without a job id")
        return data

    def outcome(self, data: dict[str, Any]) -> PollOutcome:
        status = normalize_status(data.get("status"))
        if status == "completed":
            return Completed(assets=self.assets(data),
                             completed_at=_epoch(data.get("completed_at")),
                             expires_at=_epoch(data.get("expires_at")))
        if status == "failed":
            error = data.get("error")
            code, message = ((error.get("code"), error.get("message"))
                             if isinstance(error, dict) else (None, error))
            public = self.http.public(code, message, ids=(str(data["id"]),))
            return Failed(public.code, public.message, public.raw)
        return Running("queued" if status == "queued" else "in_progress",
                       _clamp(data.get("progress")))

    def assets(self, data: dict[str, Any]) -> tuple[Asset, ...]:
        """Every variant is fetched through the content route, with the key."""
        return tuple(Asset(variant) for variant in VARIANTS)

    def submitted(self, data: Any) -> Submitted:
        job = self._job(data)
        return Submitted(str(job["id"]), outcome=self.outcome(job))

    def create_fields(self, request: CreateRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {"model": request.model, "prompt": request.prompt,
                                  "seconds": str(request.seconds), "size": request.size_text}
        if request.metadata:
            fields["metadata"] = json.dumps(dict(request.metadata), separators=(",", ":"))
        return fields

    # -- the seam ----------------------------------------------------------------------------
    async def create(self, request: CreateRequest, key: str) -> Submitted:
        fields = self.create_fields(request)
        image = request.image
        if image is not None and image.data is not None:
            files = {"input_reference": (image.filename, image.data, image.content_type)}
            data = {name: str(value) for name, value in fields.items()}
            built = self.http.request("POST", "/videos", key, data=data, files=files)
        else:
            if image is not None:
                fields["input_reference"] = ({"file_id": image.file_id} if image.file_id
                                             else {"image_url": image.url})
            built = self.http.request("POST", "/videos", key, json=fields)
        return self.submitted(await self.http.json(built, "create"))

    async def poll(self, upstream_id: str, state: Mapping[str, str], key: str) -> PollOutcome:
        built = self.http.request("GET", f"/videos/{upstream_id}", key)
        try:
            data = self._job(await self.http.json(built, "retrieve", gone_on_404=True,
                                                  ids=(upstream_id,)))
        except UpstreamError as exc:
            return Unreachable(str(exc))
        return self.outcome(data)

    async def cancel(self, upstream_id: str, state: Mapping[str, str], key: str) -> None:
        built = self.http.request("DELETE", f"/videos/{upstream_id}", key)
        response = await self.http.send(built, "delete")
        if response.status_code != 404:
            self.http.check(response, gone_on_404=True, ids=(upstream_id,))

    @asynccontextmanager
    async def content(self, upstream_id: str, state: Mapping[str, str], key: str, *,
                      variant: str, url: str | None,
                      range_header: str | None) -> AsyncIterator[ContentStream]:
        headers = {"Range": range_header} if range_header else {}
        built = self.http.request("GET", f"/videos/{upstream_id}/content", key,
                                  params={"variant": variant}, headers=headers)
        async with self.http.open(built) as stream:
            yield stream

    # -- what only the OpenAI format offers --------------------------------------------------
    async def remix(self, upstream_id: str, prompt: str, key: str) -> Submitted:
        built = self.http.request("POST", f"/videos/{upstream_id}/remix", key,
                                  json={"prompt": prompt})
        return self.submitted(await self.http.json(built, "remix", ids=(upstream_id,)))

    async def derive(self, request: DeriveRequest, key: str) -> Submitted:
        fields: dict[str, Any] = {"prompt": request.prompt}
        for name in ("seconds", "model", "size"):
            if getattr(request, name) is not None:
                fields[name] = str(getattr(request, name))
        path = f"/videos/{request.kind}"
        if request.upload is not None:
            built = self.http.request("POST", path, key, data=fields,
                                      files={"video": request.upload.part()})
        else:
            built = self.http.request("POST", path, key,
                                      json={**fields, "video": {"id": request.source_id}})
        return self.submitted(await self.http.json(built, request.kind,
                                                   ids=(request.source_id,)))

    async def create_character(self, name: str, upload: VideoUpload, key: str) -> Character:
        built = self.http.request("POST", "/videos/characters", key, data={"name": name},
                                  files={"video": upload.part()})
        data = self._job(await self.http.json(built, "character"))
        created = data.get("created_at")
        return Character(id=str(data["id"]), name=data.get("name"),
                         created_at=int(created) if isinstance(created, int | float) else 0)


def make(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
         secrets: UpstreamSecrets | None = None) -> OpenAIFlavor:
    return OpenAIFlavor(UpstreamHTTP(name, base_url, client, timeout_s, Bearer(),
                                     secrets=secrets))


def _epoch(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _clamp(value: Any) -> int:
    try:
        return max(0, min(100, int(float(value))))
    except (TypeError, ValueError):
        return 0

