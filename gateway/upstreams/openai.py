"""Adapter for upstreams that speak the OpenAI Videos API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway import __version__
from gateway.metrics import upstream_timer
from gateway.upstreams.base import (
    Character,
    DeriveRequest,
    SubmitRequest,
    UpstreamAmbiguous,
    UpstreamError,
    UpstreamGone,
    UpstreamJob,
    UpstreamRefused,
    UpstreamUnavailable,
    VideoUpload,
    normalize_status,
)
from gateway.upstreams.sanitize import PublicError, UpstreamSecrets, public_error
from gateway.upstreams.transport import UpstreamClient

USER_AGENT = f"video-gateway/{__version__}"

# Upstream statuses that mean "our side is misconfigured or the upstream is down": the
# client's request is not at fault, so creates fail over and nothing is passed through.
# 402 is the operator's account at the upstream running dry, not the client's.
_NOT_CLIENTS_FAULT = {401, 402, 403, 404, 405, 408, 409, 429}


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _error_fields(response: httpx.Response) -> tuple[object, object, object]:
    """(code, message, param) of an error answer, as the upstream wrote them."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None, None, None
    if isinstance(error, dict):
        return error.get("code"), error.get("message"), error.get("param")
    return None, error, None


def _epoch(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


class OpenAIAdapter:
    """One upstream; vendor JSON is read and written here and nowhere else."""

    def __init__(self, name: str, base_url: str, client: UpstreamClient, timeout_s: float,
                 secrets: UpstreamSecrets | None = None) -> None:
        self.name = name
        self.base_url = base_url
        self.client = client
        self.timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self.secrets = secrets or UpstreamSecrets.of(name=name, base_url=base_url)

    def public_error(self, code: object, message: object, param: object = None, *,
                     ids: tuple[str | None, ...] = ()) -> PublicError:
        """Every word of this upstream that may reach a client passes through here."""
        return public_error(code, message, param, secrets=self.secrets, ids=ids)

    # -- transport ---------------------------------------------------------------------------
    async def _send(self, request: httpx.Request, operation: str, *,
                    stream: bool = False) -> httpx.Response:
        try:
            async with upstream_timer(self.name, operation):
                if stream:
                    return await self.client.send(request, stream=True)
                return await self.client.exchange(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamUnavailable(f"cannot connect ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            # The request may have reached the upstream: whatever it did is unknown.
            raise UpstreamAmbiguous(f"no answer ({type(exc).__name__})") from exc

    def _build(self, method: str, path: str, key: str, **kwargs: Any) -> httpx.Request:
        headers = {"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT,
                   **kwargs.pop("headers", {})}
        return httpx.Request(method, f"{self.base_url}{path}", headers=headers,
                             extensions={"timeout": self.timeout.as_dict()}, **kwargs)

    def _check(self, response: httpx.Response, *, gone_on_404: bool,
               ids: tuple[str | None, ...] = ()) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 404 and gone_on_404:
            raise UpstreamGone("upstream does not know the job")
        if status >= 500 or status in _NOT_CLIENTS_FAULT:
            raise UpstreamUnavailable(f"upstream answered {status}",
                                      retry_after=_retry_after(response))
        raise UpstreamRefused(status, self.public_error(*_error_fields(response), ids=ids))

    async def _json(self, request: httpx.Request, operation: str, *, gone_on_404: bool,
                    ids: tuple[str | None, ...] = ()) -> dict[str, Any]:
        response = await self._send(request, operation)
        self._check(response, gone_on_404=gone_on_404, ids=ids)
        try:
            data = response.json()
        except ValueError as exc:
            raise UpstreamAmbiguous("upstream answered with malformed JSON") from exc
        if not isinstance(data, dict) or not data.get("id"):
            raise UpstreamAmbiguous("upstream answered without a job id")
        return data

    # -- vendor format -----------------------------------------------------------------------
    def parse_job(self, data: dict[str, Any]) -> UpstreamJob:
        status = normalize_status(data.get("status"))
        failure = self._failure(data) if status == "failed" else None
        progress = data.get("progress")
        return UpstreamJob(
            id=str(data["id"]),
            status=status,
            progress=100 if status == "completed" else _clamp(progress),
            error_code=failure.code if failure else None,
            error_message=failure.message if failure else None,
            error_raw=failure.raw if failure else None,
            completed_at=_epoch(data.get("completed_at")),
            expires_at=_epoch(data.get("expires_at")),
            content_url=self.content_url_of(data),
        )

    def _failure(self, data: dict[str, Any]) -> PublicError:
        error = data.get("error")
        if isinstance(error, dict):
            return self.public_error(error.get("code"), error.get("message"),
                                     ids=(str(data["id"]),))
        return self.public_error(None, error, ids=(str(data["id"]),))

    def content_url_of(self, data: dict[str, Any]) -> str | None:
        return None

    def create_fields(self, request: SubmitRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {"model": request.model, "prompt": request.prompt,
                                  "seconds": str(request.seconds), "size": request.size}
        if request.metadata is not None:
            fields["metadata"] = request.metadata
        return fields

    # -- operations --------------------------------------------------------------------------
    async def create(self, request: SubmitRequest, key: str) -> UpstreamJob:
        fields = self.create_fields(request)
        if request.image is not None:
            image = request.image
            files = {"input_reference": (image.filename, image.data, image.content_type)}
            data = {name: str(value) for name, value in fields.items()}
            built = self._build("POST", "/videos", key, data=data, files=files)
        else:
            if request.image_reference is not None:
                fields["input_reference"] = request.image_reference
            built = self._build("POST", "/videos", key, json=fields)
        return self.parse_job(await self._json(built, "create", gone_on_404=False))

    async def retrieve(self, upstream_id: str, key: str) -> UpstreamJob:
        built = self._build("GET", f"/videos/{upstream_id}", key)
        return self.parse_job(await self._json(built, "retrieve", gone_on_404=True,
                                               ids=(upstream_id,)))

    async def remix(self, upstream_id: str, prompt: str, key: str) -> UpstreamJob:
        built = self._build("POST", f"/videos/{upstream_id}/remix", key, json={"prompt": prompt})
        return self.parse_job(await self._json(built, "remix", gone_on_404=False,
                                               ids=(upstream_id,)))

    async def derive(self, request: DeriveRequest, key: str) -> UpstreamJob:
        fields: dict[str, Any] = {"prompt": request.prompt}
        for name in ("seconds", "model", "size"):
            if getattr(request, name) is not None:
                fields[name] = str(getattr(request, name))
        path = f"/videos/{request.kind}"
        if request.upload is not None:
            built = self._build("POST", path, key, data=fields,
                                files={"video": request.upload.part()})
        else:
            built = self._build("POST", path, key, json={**fields,
                                                         "video": {"id": request.source_id}})
        return self.parse_job(await self._json(built, request.kind, gone_on_404=False,
                                               ids=(request.source_id,)))

    async def create_character(self, name: str, upload: VideoUpload, key: str) -> Character:
        built = self._build("POST", "/videos/characters", key, data={"name": name},
                            files={"video": upload.part()})
        data = await self._json(built, "character", gone_on_404=False)
        created = data.get("created_at")
        return Character(id=str(data["id"]), name=data.get("name"),
                         created_at=int(created) if isinstance(created, int | float) else 0)

    async def delete(self, upstream_id: str, key: str) -> None:
        response = await self._send(self._build("DELETE", f"/videos/{upstream_id}", key),
                                    "delete")
        if response.status_code != 404:
            self._check(response, gone_on_404=True, ids=(upstream_id,))

    @asynccontextmanager
    async def content(self, upstream_id: str, key: str, *, variant: str, content_url: str | None,
                      range_header: str | None) -> AsyncIterator[httpx.Response]:
        headers = {"Range": range_header} if range_header else {}
        built = self._build("GET", f"/videos/{upstream_id}/content", key,
                            params={"variant": variant}, headers=headers)
        response = await self._open(built, upstream_id)
        try:
            yield response
        finally:
            await response.aclose()

    async def _open(self, request: httpx.Request, upstream_id: str) -> httpx.Response:
        response = await self._send(request, "content", stream=True)
        if response.status_code >= 400 and response.status_code != 416:
            await response.aclose()
            try:
                self._check(response, gone_on_404=True, ids=(upstream_id,))
            except UpstreamRefused as exc:
                raise UpstreamGone(exc.message) from exc
            raise UpstreamError(f"upstream answered {response.status_code}")
        return response


def _clamp(value: Any) -> int:
    try:
        return max(0, min(100, int(float(value))))
    except (TypeError, ValueError):
        return 0

