"""``POST /v1/chat/completions`` over video jobs, and ``GET /v1/models``: thin routes."""

from __future__ import annotations

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
    return JSONResponse(await chat.answer(started), headers=started.headers)
