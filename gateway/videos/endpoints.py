"""The OpenAI Videos API: thin routes over VideoService."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.responses import StreamingResponse

from gateway.db import now
from gateway.tokens.auth import GatewayToken, check_token
from gateway.videos.characters import CharacterOut, CharacterService
from gateway.videos.content import ContentAsk, stream_content
from gateway.videos.deps import Served as Context
from gateway.videos.inputs import parse_create, parse_prompt, read_body
from gateway.videos.models import Job
from gateway.videos.schemas import (
    CHARACTER_BODY,
    CREATE_BODY,
    DERIVE_BODY,
    REMIX_BODY,
    Video,
    VideoDeleted,
    VideoList,
)
from gateway.videos.service import VideoService, shared_video
from gateway.videos.sharing import Linker, SharedLink, ShareRequest
from gateway.videos.sources import parse_character, parse_derive

router = APIRouter(prefix="/v1/videos", tags=["videos"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def _video(body: bytes, ctx: Context) -> Response:
    """A Video, already JSON, with the pace the client should poll it at."""
    return Response(body, media_type="application/json",
                    headers={"openai-poll-after-ms": str(ctx.settings.jobs.poll_after_ms)})


def _job(job: Job, ctx: Context) -> Response:
    # Rendered here rather than by FastAPI, which would dump the model, validate the dump
    # against response_model and dump it again.
    return _video(Video.json_of(job), ctx)


@router.post("", response_model=Video, openapi_extra=CREATE_BODY)
async def create_video(request: Request, ctx: Context, token: GatewayToken,
                       idempotency_key: IdempotencyKey = None) -> Response:
    params = await parse_create(await read_body(request), ctx.settings)
    return _job(await VideoService(ctx, token).create(params, idempotency_key), ctx)


@router.post("/edits", response_model=Video, openapi_extra=DERIVE_BODY)
async def edit_video(request: Request, ctx: Context, token: GatewayToken,
                     idempotency_key: IdempotencyKey = None) -> Response:
    params = await parse_derive("edits", await read_body(request), ctx.settings)
    return _job(await VideoService(ctx, token).derive(params, idempotency_key), ctx)


@router.post("/extensions", response_model=Video, openapi_extra=DERIVE_BODY)
async def extend_video(request: Request, ctx: Context, token: GatewayToken,
                       idempotency_key: IdempotencyKey = None) -> Response:
    params = await parse_derive("extensions", await read_body(request), ctx.settings)
    return _job(await VideoService(ctx, token).derive(params, idempotency_key), ctx)


@router.post("/characters", response_model=CharacterOut, openapi_extra=CHARACTER_BODY)
async def create_character(request: Request, ctx: Context, token: GatewayToken) -> CharacterOut:
    params = await parse_character(await read_body(request))
    return CharacterOut.of(await CharacterService(ctx, token).create(params))


@router.get("/characters/{character_id}", response_model=CharacterOut)
async def get_character(character_id: str, ctx: Context, token: GatewayToken) -> CharacterOut:
    return CharacterOut.of(await CharacterService(ctx, token).get(character_id))


@router.get("", response_model=VideoList)
async def list_videos(ctx: Context, token: GatewayToken, after: str | None = None,
                      limit: Annotated[int, Query()] = 20,
                      order: Annotated[str, Query()] = "desc") -> VideoList:
    jobs, has_more = await VideoService(ctx, token).page(after=after, limit=limit, order=order)
    data = [Video.of(job) for job in jobs]
    return VideoList(data=data, first_id=data[0].id if data else None,
                     last_id=data[-1].id if data else None, has_more=has_more)


@router.get("/{video_id}", response_model=Video)
async def retrieve_video(video_id: str, ctx: Context, token: GatewayToken) -> Response:
    return _video(await VideoService(ctx, token).retrieve_json(video_id), ctx)


@router.delete("/{video_id}", response_model=VideoDeleted)
async def delete_video(video_id: str, ctx: Context, token: GatewayToken) -> VideoDeleted:
    await VideoService(ctx, token).delete(video_id)
    return VideoDeleted(id=video_id)


# HEAD answers what GET would, without a byte of the body (Range, If-Range, If-None-Match
# are read by ContentAsk from the request itself).
@router.api_route("/{video_id}/content", methods=["GET", "HEAD"],
                  response_class=StreamingResponse)
async def download_content(
    video_id: str, request: Request, ctx: Context,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
    expires: str | None = None, signature: str | None = None,
) -> Response:
    if expires is None and signature is None:
        token = await check_token(request.headers.get("authorization", ""), ctx)
        job = await VideoService(ctx, token).completed(video_id)
    else:  # a signed link: it is the credential, for this video and variant only
        _linker(ctx).check(video_id, variant, expires, signature, now())
        job = await shared_video(ctx, video_id)
    return await stream_content(ctx, job, ContentAsk.of(request, variant))


@router.post("/{video_id}/share", response_model=SharedLink)
async def share_video(video_id: str, request: Request, ctx: Context,
                      token: GatewayToken) -> SharedLink:
    fields = await read_body(request) if await request.body() else {}
    share = ShareRequest.parse(fields)
    job = await VideoService(ctx, token).completed(video_id)
    return _linker(ctx).share(str(request.base_url), job.id, share, now())


def _linker(ctx: Context) -> Linker:
    return Linker(ctx.hash_key, ctx.settings.server.public_url)


@router.post("/{video_id}/remix", response_model=Video, openapi_extra=REMIX_BODY)
async def remix_video(video_id: str, request: Request, ctx: Context,
                      token: GatewayToken, idempotency_key: IdempotencyKey = None) -> Response:
    prompt = parse_prompt(await read_body(request), ctx.settings)
    return _job(await VideoService(ctx, token).remix(video_id, prompt, idempotency_key), ctx)
