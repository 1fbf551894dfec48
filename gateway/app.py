"""create_app(): lifespan resources, routers, error handling."""

from __future__ import annotations

import gc
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from gateway import __version__
from gateway.archive.archiver import Archiver
from gateway.archive.config import ArchiveConfig, open_store
from gateway.cache import TTLCache
from gateway.chat.endpoints import router as chat_router
from gateway.config import Settings
from gateway.console.endpoints import router as console_router
from gateway.core import Core, open_core
from gateway.errors import ERROR_RESPONSES, install_error_handlers
from gateway.health import router as health_router
from gateway.jobs.changes import JobChanges
from gateway.jobs.reconciler import Reconciler
from gateway.jobs.tracker import JobTracker
from gateway.ledger.endpoints import router as reports_router
from gateway.looplag import LoopLagTicker
from gateway.middleware import GatewayMiddleware
from gateway.tokens.endpoints import router as tokens_router
from gateway.tokens.me import router as me_router
from gateway.upstreams.pool import UpstreamPool
from gateway.videos.admin import router as admin_videos_router
from gateway.videos.endpoints import router as videos_router
from gateway.videos.polls import PollFastPath
from gateway.webhooks.endpoints import router as webhooks_router
from gateway.webhooks.worker import DeliveryWorker

log = logging.getLogger("gateway.app")


@dataclass
class AppContext(Core):
    """Long-lived resources of one serving process: the database's (``Core``), the upstreams',
    the tracker's and the caches'. Routes see it only through the protocols their packages
    declare (``gateway.videos.deps.VideoDeps``, the token checks' ``Core``)."""

    pool: UpstreamPool
    instance_id: str
    tracker: JobTracker
    # Waits on jobs for the requests that hold a connection open on one (chat completions).
    changes: JobChanges
    archive: Archiver
    # Rendered videos by id (with their owner's token id).
    videos: TTLCache[tuple[str, bytes]]


@asynccontextmanager
async def open_context(settings: Settings) -> AsyncIterator[AppContext]:
    """Build a serving process's long-lived resources (the app's lifespan)."""
    async with open_core(settings) as core:
        pool = UpstreamPool(settings)
        store = open_store(settings.archive)
        try:
            instance_id = "gw_" + secrets.token_hex(6)
            # A poll may be answered from a slightly stale entry while it is refreshed; a token
            # never is (a revocation from another process must take effect within cache_s).
            videos: TTLCache[tuple[str, bytes]] = TTLCache(settings.cache_s,
                                                           serve_stale_s=settings.cache_s)

            def changed(job_id: str) -> None:
                videos.drop(job_id)
                changes.notify(job_id)

            tracker = JobTracker(settings, core.engine, core.sessions, pool, instance_id,
                                 on_changed=changed)
            changes = JobChanges.of_database(core.sessions, tracker.refresh,
                                             refresh_after_s=settings.jobs.refresh_after_s,
                                             reread_s=settings.chat.progress_every_s)
            archive = Archiver(settings, core.sessions, pool, store, instance_id,
                               on_changed=changed)
            yield AppContext(
                settings=settings, engine=core.engine, sessions=core.sessions,
                hash_key=core.hash_key, tokens=core.tokens, pool=pool,
                instance_id=instance_id, tracker=tracker, changes=changes, archive=archive,
                videos=videos,
            )
            await changes.close()
            await archive.stop()
        finally:
            await store.aclose()
            await pool.aclose()


def warn_deprecated(settings: Settings) -> None:
    old = settings.content_store
    if old is None:
        return
    aliased = settings.archive == ArchiveConfig.model_validate(old.as_archive())
    log.warning("the content_store: section is deprecated and will stop being read in the "
                "next release; use archive: (dir, retention_days) instead"
                + ("" if aliased else "; archive: is set too and wins")
                + ("" if old.enabled else "; content_store.enabled: false is ignored, every "
                   "finished video is archived"))


def _freeze_startup_objects() -> None:
    """Keep what startup built (modules, models, routes) out of the cyclic GC's full passes.

    Those objects live as long as the process, yet every full collection walked all of them:
    about 50 ms, every second or two under load, and every request in flight waited it out
    (poll p99 at 100 clients went from ~20 ms to over 250 ms).
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, *, run_reconciler: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_context(settings) as ctx:
            app.state.ctx = ctx
            warn_deprecated(settings)
            reconciler = Reconciler(ctx.tracker, ctx.archive)
            app.state.reconciler = reconciler
            webhooks = DeliveryWorker(settings.webhooks, ctx.engine, ctx.sessions,
                                      ctx.instance_id)
            if run_reconciler:
                reconciler.start()
                webhooks.start()
            _freeze_startup_objects()
            interval = settings.metrics.loop_lag_interval_s
            ticker = LoopLagTicker(interval) if interval else None
            if ticker is not None:
                ticker.start()
            try:
                yield
            finally:
                if ticker is not None:
                    await ticker.stop()
                await webhooks.stop()
                await reconciler.stop()

    app = FastAPI(title="Video Gateway", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    install_error_handlers(app)
    # Added first, so it runs inside GatewayMiddleware (request ids, limits, metrics).
    app.add_middleware(PollFastPath)
    app.add_middleware(GatewayMiddleware, max_body_bytes=settings.max_upload_bytes)
    for router in (videos_router, me_router, tokens_router, admin_videos_router, reports_router,
                   webhooks_router, console_router, chat_router):
        app.include_router(router, responses=ERROR_RESPONSES)
    app.include_router(health_router)
    return app
