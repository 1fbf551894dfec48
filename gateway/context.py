"""Long-lived resources of one gateway process, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.cache import TTLCache
from gateway.config import Settings
from gateway.jobs.tracker import JobTracker
from gateway.tokens.models import Token
from gateway.upstreams.pool import UpstreamPool
from gateway.videos.store import ContentStore


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    pool: UpstreamPool
    hash_key: bytes
    instance_id: str
    tracker: JobTracker
    store: ContentStore
    # Usable tokens by key hash, and rendered videos by id (with their owner's token id).
    tokens: TTLCache[Token]
    videos: TTLCache[tuple[str, bytes]]
