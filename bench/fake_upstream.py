"""A deliberately fast fake upstream for benchmarks: fixed answers, little bookkeeping.

It answers the OpenAI Videos routes the gateway and the peers call: create returns a queued
job (a finished one of N bytes when the request carries "bytes=N"), retrieve reports it,
content streams zero bytes; /_stats counts retrieves per job and the most in flight at once.
The gateway's own simulator sleeps in every retrieve to make overlapping polls visible; that
would be the bottleneck here, so benchmarks use this instead.

    python bench/fake_upstream.py --port 9200 [--content-mib 64]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
import uuid
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CHUNK = b"\0" * (256 * 1024)


def _video(job_id: str, status: str, progress: int) -> dict[str, object]:
    return {"id": job_id, "object": "video", "model": "sora-2", "status": status,
            "progress": progress, "created_at": int(time.time()), "completed_at": None,
            "expires_at": None, "size": "720x1280", "seconds": "4", "quality": "standard",
            "prompt": "bench", "remixed_from_video_id": None, "error": None}


class Stats:
    def __init__(self) -> None:
        self.retrieves: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0


def _size_of(job_id: str, default: int) -> int:
    """Jobs made with "bytes=N" in the prompt are finished and N bytes long."""
    head = job_id.split("_", 1)[0]
    return int(head[4:]) if head.startswith("done") and head[4:].isdigit() else default


def create_app(content_bytes: int, poll_delay_s: float = 0.0) -> Starlette:
    stats = Stats()

    async def create(request: Request) -> Response:
        body = await request.body()
        match = re.search(rb"bytes=(\d+)", body)
        prefix = f"done{int(match.group(1))}" if match else "video"
        return JSONResponse(_video(f"{prefix}_{uuid.uuid4().hex}", "queued", 0))

    async def retrieve(request: Request) -> Response:
        job_id = request.path_params["video_id"]
        stats.retrieves[job_id] += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if poll_delay_s:
                await asyncio.sleep(poll_delay_s)
        finally:
            stats.in_flight -= 1
        status = "completed" if job_id.startswith("done") else "in_progress"
        return JSONResponse(_video(job_id, status, 100 if status == "completed" else 40))

    async def report(request: Request) -> Response:
        return JSONResponse({"retrieves": stats.retrieves, "total": sum(stats.retrieves.values()),
                             "max_in_flight": stats.max_in_flight})

    async def content(request: Request) -> Response:
        size = _size_of(request.path_params["video_id"], content_bytes)

        async def body():  # type: ignore[no-untyped-def]
            remaining = size
            while remaining > 0:
                chunk = CHUNK if remaining >= len(CHUNK) else CHUNK[:remaining]
                remaining -= len(chunk)
                yield chunk

        return StreamingResponse(body(), media_type="video/mp4",
                                 headers={"content-length": str(size)})

    return Starlette(routes=[
        Route("/v1/videos", create, methods=["POST"]),
        Route("/v1/videos/{video_id}", retrieve, methods=["GET"]),
        Route("/v1/videos/{video_id}/content", content, methods=["GET"]),
        Route("/_stats", report, methods=["GET"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--content-mib", type=float, default=64)
    parser.add_argument("--poll-delay-ms", type=float, default=0)
    args = parser.parse_args()
    app = create_app(int(args.content_mib * 1024 * 1024), args.poll_delay_ms / 1000)
    uvicorn.run(app, host="127.0.0.1",
                port=args.port, log_level="warning", loop="uvloop", http="httptools",
                access_log=False)


if __name__ == "__main__":
    main()
