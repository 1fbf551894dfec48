"""Long-lived resources of one serving process, built in the app's lifespan: the database's
(``Core``) and the upstreams', the tracker's and the caches'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.cache import TTLCache
from gateway.core import Core
from gateway.jobs.tracker import JobTracker
from gateway.upstreams.pool import UpstreamPool
from gateway.videos.store import ContentStore


@dataclass
class AppContext(Core):
    pool: UpstreamPool
    instance_id: str
    tracker: JobTracker
    store: ContentStore
    # Rendered videos by id (with their owner's token id).
    videos: TTLCache[tuple[str, bytes]]


async def served(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


# The whole serving context, for the routes that reach upstreams.
Served = Annotated[AppContext, Depends(served)]
