"""A chat completion over a video job: start it through the create pipeline, then wait on it
and tell the client what became of it (as a stream of chunks, or one message)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.chat.deps import ChatDeps
from gateway.chat.replies import (
    DONE,
    KEEPALIVE,
    Completion,
    failed_text,
    pending_text,
    progress_line,
    ready_text,
)
from gateway.chat.request import ChatRequest, create_params, parse_chat
from gateway.db import now
from gateway.jobs.changes import settled
from gateway.ledger.pricing import micros_to_usd
from gateway.tokens.models import Token
from gateway.videos.models import Job
from gateway.videos.service import VideoService
from gateway.videos.sharing import DEFAULT_SHARE_S, Linker

PRICE_HEADER = "x-video-price-usd"
VIDEO_HEADER = "x-video-id"


@dataclass(frozen=True)
class Started:
    request: ChatRequest
    job: Job
    completion: Completion

    @property
    def headers(self) -> dict[str, str]:
        """What the job costs (held now; captured if it completes, refunded if it fails)."""
        return {PRICE_HEADER: micros_to_usd(self.job.price_micros), VIDEO_HEADER: self.job.id}


class ChatService:
    def __init__(self, ctx: ChatDeps, token: Token, base_url: str) -> None:
        self.ctx = ctx
        self.token = token
        self.base_url = base_url
        self.config = ctx.settings.chat

    async def start(self, body: Mapping[str, Any], idempotency_key: str | None) -> Started:
        """Check the request whole, then hold and submit its job (or find the key's job)."""
        request = parse_chat(body)
        params = await create_params(request, self.ctx.settings)
        job = await VideoService(self.ctx, self.token).create(params, idempotency_key)
        completion = Completion(id="chatcmpl-" + job.id.removeprefix("video_"),
                                created=int(now()), model=request.model)
        return Started(request, job, completion)

    async def answer(self, started: Started) -> dict[str, Any]:
        """The whole answer, once the job has ended or ``chat.wait_s`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.wait_s
        job = started.job
        while not settled(job) and (left := deadline - loop.time()) > 0:
            job = await self.ctx.changes.next_change(job.id, left, seen=job) or job
        text = self._final_text(job) if settled(job) else pending_text(job)
        return started.completion.message(text)

    async def stream(self, started: Started) -> AsyncIterator[str]:
        """Server-sent chunks: at once, on every step of the job, and a keep-alive comment
        whenever the job has been quiet for ``chat.keepalive_s``. Cancelled when the client
        hangs up: the job goes on without it."""
        completion, job = started.completion, started.job
        yield completion.chunk({"role": "assistant", "content": ""})
        loop = asyncio.get_running_loop()
        said, last_sent = "", loop.time()
        while not settled(job):
            if (line := progress_line(job)) != said:
                yield completion.chunk({"content": f"{line}\n"})
                said, last_sent = line, loop.time()
            quiet_for = self.config.keepalive_s - (loop.time() - last_sent)
            job = await self.ctx.changes.next_change(job.id, max(quiet_for, 0), seen=job) or job
            if loop.time() - last_sent >= self.config.keepalive_s:
                yield KEEPALIVE
                last_sent = loop.time()
        yield completion.chunk({"content": ("\n" if said else "") + self._final_text(job)})
        yield completion.chunk({}, "stop")
        if started.request.include_usage:
            yield completion.usage_chunk()
        yield DONE

    def _final_text(self, job: Job) -> str:
        if job.status != "completed":
            return failed_text(job)
        expires_at = int(now()) + DEFAULT_SHARE_S
        link = Linker(self.ctx.hash_key, self.ctx.settings.server.public_url).link(
            self.base_url, job.id, "video", expires_at)
        return ready_text(job, link, DEFAULT_SHARE_S // 3600)
