"""Liveness, readiness and metrics."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from gateway.errors import ErrorResponse
from gateway.ledger.pricing import MICROS_PER_USD
from gateway.metrics import HELD_USD, JOBS, RECONCILER_LAG, REGISTRY
from gateway.migrate import current_revision, head_revision
from gateway.tokens.auth import Context, MetricsAuth
from gateway.tokens.models import Token
from gateway.videos.models import Job

log = logging.getLogger("gateway.health")

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the same body, with the "
                                                    "checks that failed set to false."}})
async def readyz(ctx: Context) -> JSONResponse:
    """Ready when the database answers, its schema is current and an upstream is configured."""
    checks = {"database": False, "migrations": False, "upstreams": bool(ctx.settings.upstreams)}
    try:
        revision = await current_revision(ctx.engine)
        checks["database"] = True
        checks["migrations"] = revision == head_revision()
    except Exception:
        log.warning("readiness check could not reach the database", exc_info=True)
    ready = all(checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics", dependencies=[MetricsAuth], responses={
    401: {"model": ErrorResponse,
          "description": "No admin or metrics token (unless metrics.public is set)."}})
async def metrics(request: Request, ctx: Context) -> Response:
    async with ctx.sessions() as session:
        counts = dict((await session.execute(
            select(Job.status, func.count()).group_by(Job.status))).all())
        held = (await session.execute(select(func.sum(Token.held_micros)))).scalar() or 0
    for status in ("submitting", "queued", "in_progress", "completed", "failed"):
        JOBS.labels(status).set(counts.get(status, 0))
    HELD_USD.set(held / MICROS_PER_USD)
    last = request.app.state.reconciler.last_cycle_at
    RECONCILER_LAG.set(time.time() - last if last else 0)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
