"""A fast webhook receiver for benchmarks: records when each event first arrived.

``POST /<any>/ok`` answers 204, ``/<any>/flaky`` answers 500 to about one request in ten,
``/<any>/down`` always 500. ``GET /_stats?path=/x/ok`` returns that path's request count and
the first arrival (epoch seconds) of each ``webhook-id``.

    python bench/webhook_receiver.py --port 9300
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAIL_SHARE = {"ok": 0.0, "flaky": 0.1, "down": 1.0}


def create_app() -> Starlette:
    arrivals: dict[str, dict[str, float]] = {}
    requests: Counter[str] = Counter()
    rng = random.Random(16)

    async def receive(request: Request) -> Response:
        await request.body()
        path = request.url.path
        requests[path] += 1
        if rng.random() < FAIL_SHARE.get(path.rsplit("/", 1)[1], 0.0):
            return Response(status_code=500)
        arrivals.setdefault(path, {}).setdefault(request.headers["webhook-id"], time.time())
        return Response(status_code=204)

    async def stats(request: Request) -> Response:
        path = request.query_params["path"]
        return JSONResponse({"requests": requests[path], "arrivals": arrivals.get(path, {})})

    return Starlette(routes=[Route("/_stats", stats, methods=["GET"]),
                             Route("/{path:path}", receive, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9300)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning",
                loop="uvloop", http="httptools", access_log=False)


if __name__ == "__main__":
    main()
