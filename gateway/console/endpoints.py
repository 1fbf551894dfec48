"""Serves the operator console at /admin/ui and streams job content for its previews.

The page and its assets hold no data and load without credentials; every figure on the page
comes from the admin API, called by the browser with the admin token the operator types in.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.responses import StreamingResponse

from gateway.errors import NotFound, VideoNotReady
from gateway.tokens.auth import AdminAuth
from gateway.videos.admin import any_job
from gateway.videos.content import ContentAsk, stream_content
from gateway.videos.deps import Served
from gateway.videos.schemas import public_status

router = APIRouter(prefix="/admin", tags=["admin"])

STATIC_DIR = Path(__file__).parent / "static"
PAGE = "index.html"
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
# The page may talk to its own origin only; previews play from blob: URLs it makes itself.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' blob:; "
        "img-src 'self' data: blob:; media-src blob:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def _serve(name: str) -> Response:
    return Response(_asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/ui", include_in_schema=False)
@router.get("/ui/", include_in_schema=False)
async def console_page() -> Response:
    return _serve(PAGE)


@router.get("/ui/static/{name}", include_in_schema=False)
async def console_asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"No console asset named '{name}'.", param="name")
    return _serve(name)


# As the API's content route: HEAD, Range, If-Range and If-None-Match alike.
@router.api_route("/videos/{video_id}/content", methods=["GET", "HEAD"],
                  response_class=StreamingResponse, dependencies=[AdminAuth])
async def admin_content(
    video_id: str, request: Request, ctx: Served,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
) -> Response:
    job = await any_job(ctx.sessions, video_id)
    if job.status != "completed":
        raise VideoNotReady(f"Video '{video_id}' is {public_status(job.status)}; content is "
                            "available once it has completed.")
    return await stream_content(ctx, job, ContentAsk.of(request, variant))
