"""``GET /v1/videos/{id}``, the request every client repeats until its video is done, answered
before FastAPI's routing.

Clients poll a job hundreds of times for each create, so per-request machinery dominates the
gateway's cost there: route matching over every route, dependency solving, a Request object,
a Response class and its header handling. This path keeps what the route does, through the
same functions — the token check (``check_token``), the owner-scoped, cached read
(``VideoService.retrieve_json``), the same errors rendered the same way — and skips the rest.
Anything that is not exactly that request goes on to the application untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.middleware import render
from gateway.tokens.auth import check_token
from gateway.videos.deps import VideoDeps
from gateway.videos.service import VideoService

_POLL = re.compile(r"/v1/videos/([^/]+)")


@dataclass(frozen=True)
class _Route:
    """What the metrics read of a matched route: its path template."""

    path: str


ROUTE = _Route("/v1/videos/{video_id}")


class PollFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _POLL.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE
        ctx: VideoDeps = scope["app"].state.ctx
        authorization = next((value.decode("latin-1") for name, value in scope["headers"]
                              if name == b"authorization"), "")
        try:
            token = await check_token(authorization, ctx)
            body = await VideoService(ctx, token).retrieve_json(match.group(1))
        except GatewayError as exc:
            await render(exc, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"openai-poll-after-ms", str(ctx.settings.jobs.poll_after_ms).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
