"""The HTTP layer every flavor sends through: auth per request, timeouts, pooling, and the
mapping of transport and HTTP failures onto the upstream errors of ``upstreams/base.py``.

httpx exceptions end here (``raise ... from exc``); a flavor sees JSON, ``ContentStream``s
and ``UpstreamError``s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway import __version__
from gateway.metrics import upstream_timer
from gateway.upstreams.auth import Auth
from gateway.upstreams.base import (
    UpstreamAmbiguous,
    UpstreamError,
    UpstreamGone,
    UpstreamRefused,
    UpstreamUnavailable,
)
from gateway.upstreams.flavor import ContentStream
from gateway.upstreams.sanitize import PublicError, UpstreamSecrets, public_error
from gateway.upstreams.transport import UpstreamClient

USER_AGENT = f"video-gateway/{__version__}"

# Statuses that mean "our side is misconfigured or the upstream is down": the client's request
# is not at fault, so creates fail over and nothing of the answer is passed on. 402 is the
# operator's account at the upstream running dry, not the client's.
NOT_CLIENTS_FAULT = frozenset({401, 402, 403, 404, 405, 408, 409, 429})

# A vendor's error body -> (message, code, param), all raw; ``public`` sanitizes them.
ErrorReader = Callable[[Any], tuple[str | None, str | None, str | None]]


def openai_error(body: Any) -> tuple[str | None, str | None, str | None]:
    """``{"error": {"message", "code", "param"}}`` (OpenAI, Ark and most resellers)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return (_text(error.get("message")), _text(error.get("code")),
                _text(error.get("param")))
    return _text(error), None, None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


class UpstreamHTTP:
    """One upstream's sending: its base URL, client, timeout, auth and error dialect."""

    def __init__(self, name: str, base_url: str, client: UpstreamClient, timeout_s: float,
                 auth: Auth, *, secrets: UpstreamSecrets | None = None,
                 errors: ErrorReader = openai_error) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self.auth = auth
        self.secrets = secrets or UpstreamSecrets.of(name=name, base_url=base_url)
        self.errors = errors

    def public(self, code: object, message: object, param: object = None, *,
               ids: tuple[str | None, ...] = ()) -> PublicError:
        """Every word of this upstream that may reach a client passes through here."""
        return public_error(code, message, param, secrets=self.secrets, ids=ids)

    def request(self, method: str, path: str, key: str | None, *,
                headers: Mapping[str, str] | None = None, **kwargs: Any) -> httpx.Request:
        """A request to ``base_url + path`` (or to an absolute URL), with the key's auth.

        ``key=None`` sends no credentials: a vendor's pre-signed link may live on another
        host, and the key must never travel there.
        """
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        sent = {"User-Agent": USER_AGENT, **(self.auth.headers(key) if key else {}),
                **(headers or {})}
        return httpx.Request(method, url, headers=sent,
                             extensions={"timeout": self.timeout.as_dict()}, **kwargs)

    async def send(self, request: httpx.Request, operation: str, *,
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

    def check(self, response: httpx.Response, *, gone_on_404: bool,
              ids: tuple[str | None, ...] = ()) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 404 and gone_on_404:
            raise UpstreamGone("upstream does not know the job")
        if status >= 500 or status in NOT_CLIENTS_FAULT:
            raise UpstreamUnavailable(f"upstream answered {status}",
                                      retry_after=retry_after(response))
        try:
            body = response.json()
        except ValueError:
            body = None
        message, code, param = self.errors(body)
        raise UpstreamRefused(status, self.public(code, message, param, ids=ids))

    async def json(self, request: httpx.Request, operation: str, *,
                   gone_on_404: bool = False, ids: tuple[str | None, ...] = ()) -> Any:
        """Send a small call; its JSON answer, or the upstream error it amounts to."""
        response = await self.send(request, operation)
        self.check(response, gone_on_404=gone_on_404, ids=ids)
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamAmbiguous("upstream answered with malformed JSON") from exc

    @asynccontextmanager
    async def open(self, request: httpx.Request) -> AsyncIterator[ContentStream]:
        """Stream an asset; a 404 (or a refusal) means it is gone, a 416 is passed on."""
        response = await self.send(request, "content", stream=True)
        try:
            if response.status_code >= 400 and response.status_code != 416:
                await response.aread()
                try:
                    self.check(response, gone_on_404=True)
                except UpstreamRefused as exc:
                    raise UpstreamGone("upstream refused the download") from exc
                raise UpstreamError(f"upstream answered {response.status_code}")
            length = response.headers.get("content-length")
            yield ContentStream(
                status=response.status_code,
                content_type=response.headers.get("content-type"),
                content_length=int(length) if length and length.isdigit() else None,
                content_range=response.headers.get("content-range"),
                chunks=_raw(response),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
        finally:
            await response.aclose()


async def _raw(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        raise UpstreamAmbiguous(f"content stream broke ({type(exc).__name__})") from exc
