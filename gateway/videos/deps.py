"""What the video services and routes are handed: the serving process's resources they use,
named as a protocol so this package imports nothing of the application that builds them.

The application's ``AppContext`` (``gateway/app.py``) satisfies it; so would a test's or a
tool's own object with these attributes.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.archive.archiver import Archiver
from gateway.cache import TTLCache
from gateway.config import Settings
from gateway.jobs.tracker import JobTracker
from gateway.tokens.auth import TokenChecks, get_context
from gateway.upstreams.pool import UpstreamPool


class VideoDeps(TokenChecks, Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> AsyncEngine: ...
    @property
    def pool(self) -> UpstreamPool: ...
    @property
    def tracker(self) -> JobTracker: ...
    @property
    def archive(self) -> Archiver: ...
    @property
    def instance_id(self) -> str: ...
    # Rendered videos by id (with their owner's token id).
    @property
    def videos(self) -> TTLCache[tuple[str, bytes]]: ...


# The same object the token checks see as a ``Core``: the app's lifespan made it.
Served = Annotated[VideoDeps, Depends(get_context)]
