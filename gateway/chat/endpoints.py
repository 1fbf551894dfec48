"""``POST /v1/chat/completions`` over video jobs, and ``GET /v1/models``: thin routes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from gateway.chat.catalog import ModelCard, ModelList, model_card, model_list
from gateway.chat.deps import ChatServed
from gateway.chat.service import ChatService
from gateway.tokens.auth import GatewayToken
from gateway.videos.endpoints import IdempotencyKey
from gateway.videos.inputs import read_body

router = APIRouter(prefix="/v1", tags=["chat"])

# Proxies must pass the chunks on as they come, not gather them.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/models", response_model=ModelList)
async def list_models(ctx: ChatServed, token: GatewayToken) -> ModelList:
    return model_list(ctx.settings, ctx.pool, token)


@router.get("/models/{model_id}", response_model=ModelCard)
async def get_model(model_id: str, ctx: ChatServed, token: GatewayToken) -> ModelCard:
    return model_card(ctx.settings, ctx.pool, token, model_id)


@router.post("/chat/completions")
async def chat_completions(request: Request, ctx: ChatServed, token: GatewayToken,
                           idempotency_key: IdempotencyKey = None) -> Response:
    chat = ChatService(ctx, token, str(request.base_url))
    started = await chat.start(await read_body(request), idempotency_key)
    if started.request.stream:
        return StreamingResponse(chat.stream(started), media_type="text/event-stream",
                                 headers={**STREAM_HEADERS, **started.headers})
    answer = await _while_connected(request, chat.answer(started))
    if answer is None:  # nobody to tell; the job goes on, and is settled, without them
        return Response(status_code=204)
    return JSONResponse(answer, headers=started.headers)


async def _while_connected(request: Request,
                           work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any] | None:
    """``work``'s result, or None (``work`` cancelled) once the client hangs up: a waiter
    must not outlive the connection it answers."""
    answer = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (answer, gone):
            task.cancel()
        await asyncio.gather(answer, gone, return_exceptions=True)
    return None if answer.cancelled() else answer.result()


async def _disconnected(request: Request) -> None:
    # The body has been read: what the server sends next is the client's hang-up.
    while (await request.receive())["type"] != "http.disconnect":
        pass
