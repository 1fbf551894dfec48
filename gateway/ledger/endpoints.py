"""Admin reports: usage by token, group, model, upstream or day; the money reconciliation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from gateway.ledger import reports
from gateway.tokens.auth import AdminAuth, Context

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminAuth])


@router.get("/usage", response_model=None)
async def usage(
    ctx: Context,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    group_by: reports.GroupBy = "token",
    token_id: str | None = None,
    format: Literal["json", "csv"] = "json",
) -> dict[str, Any] | PlainTextResponse:
    since, until = reports.parse_time(from_, "from"), reports.parse_time(to, "to")
    async with ctx.sessions() as session:
        result = await reports.usage(session, group_by=group_by, since=since, until=until,
                                     token_id=token_id)
    if format == "csv":
        return PlainTextResponse(result.as_csv(), media_type="text/csv")
    return result.as_json()


@router.get("/reconcile")
async def reconcile(ctx: Context) -> dict[str, Any]:
    async with ctx.sessions() as session:
        return await reports.reconcile(session, max_age_s=ctx.settings.jobs.max_age_s)
