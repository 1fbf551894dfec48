"""Usage reports and the money reconciliation, computed from the ledger and the jobs."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import now
from gateway.errors import InvalidRequest
from gateway.ledger.models import LedgerEntry
from gateway.ledger.pricing import micros_to_usd
from gateway.tokens.models import Token
from gateway.videos.models import UNFINISHED, Job

GroupBy = Literal["token", "group", "model", "upstream", "day"]
GROUP_BY: tuple[GroupBy, ...] = ("token", "group", "model", "upstream", "day")
USAGE_COLUMNS = ("jobs", "completed", "failed", "seconds", "charged_usd", "refunded_usd",
                 "held_usd")
# What only the operator sees: what upstreams charged for the completed jobs, and the margin.
OPERATOR_COLUMNS = (*USAGE_COLUMNS, "cost_usd", "margin_usd")

# The one definition of each money figure, read by usage (and so /v1/me and the console) and
# by the reconciliation alike. Charged: holds a completed job captured. Refunded: holds given
# back to the balance, whatever ended the job: failed, deleted, expired, lost in a crash
# while being submitted (refund), or taken by no upstream at create (release). Held: holds
# not settled yet, the price of every job without a settlement.
CHARGED = ("capture",)
REFUNDED = ("refund", "release")


def parse_time(value: str | None, param: str) -> float | None:
    """Accept epoch seconds, an ISO date or an ISO datetime (UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(f"'{param}' must be a date, datetime or epoch seconds.",
                             param=param) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


@dataclass
class UsageRow:
    key: str
    name: str | None = None
    jobs: int = 0
    completed: int = 0
    failed: int = 0
    seconds: int = 0
    charged_micros: int = 0
    refunded_micros: int = 0
    held_micros: int = 0
    # Upstream cost of completed jobs whose upstream has a cost table, and their charges.
    cost_micros: int = 0
    costed_charged_micros: int = 0

    def public(self) -> dict[str, Any]:
        """The row as a token holder may see it."""
        row = asdict(self)
        for figure in ("charged", "refunded", "held"):
            row[f"{figure}_usd"] = micros_to_usd(row.pop(f"{figure}_micros"))
        row.pop("cost_micros")
        row.pop("costed_charged_micros")
        return row

    def operator(self) -> dict[str, Any]:
        """The row with what upstreams cost and the margin over them (charges of jobs whose
        cost is known, less that cost)."""
        return {**self.public(), "cost_usd": micros_to_usd(self.cost_micros),
                "margin_usd": micros_to_usd(self.costed_charged_micros - self.cost_micros)}


@dataclass
class Usage:
    group_by: str
    rows: list[UsageRow] = field(default_factory=list)

    def total(self) -> UsageRow:
        total = UsageRow(key="total")
        for row in self.rows:
            for name in ("jobs", "completed", "failed", "seconds", "charged_micros",
                         "refunded_micros", "held_micros", "cost_micros",
                         "costed_charged_micros"):
                setattr(total, name, getattr(total, name) + getattr(row, name))
        return total

    def as_json(self) -> dict[str, Any]:
        return {"object": "usage", "group_by": self.group_by,
                "data": [row.operator() for row in self.rows],
                "total": self.total().operator()}

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([self.group_by, "name", *OPERATOR_COLUMNS])
        for row in self.rows:
            data = row.operator()
            writer.writerow([row.key, row.name or "", *(data[c] for c in OPERATOR_COLUMNS)])
        return out.getvalue()


def _key(job: Any, group_by: GroupBy) -> str:
    if group_by == "day":
        return day_of(job.created_at)
    if group_by == "token":
        return str(job.token_id)
    return str(getattr(job, group_by) or "-")


async def usage(session: AsyncSession, *, group_by: GroupBy, since: float | None,
                until: float | None, token_id: str | None = None) -> Usage:
    """Every job that held money, grouped by when it was created; its money is what its
    settlement entry says (see CHARGED, REFUNDED), or held while it has none."""
    if group_by not in GROUP_BY:
        raise InvalidRequest(f"'group_by' must be one of {', '.join(GROUP_BY)}.",
                             param="group_by")
    query = (
        select(Job.token_id, Job.group, Job.model, Job.upstream, Job.created_at, Job.status,
               Job.seconds, Job.price_micros, Job.cost_micros, LedgerEntry.kind,
               LedgerEntry.amount_micros,
               Token.name)
        .join(Token, Token.id == Job.token_id)
        .outerjoin(LedgerEntry, LedgerEntry.settles_job_id == Job.id)
    )
    if since is not None:
        query = query.where(Job.created_at >= since)
    if until is not None:
        query = query.where(Job.created_at < until)
    if token_id is not None:
        query = query.where(Job.token_id == token_id)
    rows: dict[str, UsageRow] = {}
    for job in (await session.execute(query)).all():
        key = _key(job, group_by)
        row = rows.setdefault(key, UsageRow(key=key,
                                            name=job.name if group_by == "token" else None))
        _count(row, job)
    return Usage(group_by=group_by, rows=sorted(rows.values(), key=lambda r: r.key))


def _count(row: UsageRow, job: Any) -> None:
    row.jobs += 1
    if job.status == "completed":
        row.completed += 1
        row.seconds += job.seconds
    elif job.status == "failed":
        row.failed += 1
    if job.kind in CHARGED:
        row.charged_micros += job.amount_micros
        if job.cost_micros is not None:
            row.cost_micros += job.cost_micros
            row.costed_charged_micros += job.amount_micros
        # A capture of what was rendered gave the rest of the hold back beside it.
        row.refunded_micros += job.price_micros - job.amount_micros
    elif job.kind in REFUNDED:
        row.refunded_micros += job.amount_micros
    else:
        row.held_micros += job.price_micros


MONEY_FIELDS = ("topups", "balance", "held", "charged", "refunded")


async def reconcile(session: AsyncSession, *, max_age_s: float) -> dict[str, Any]:
    """Prove, per token and in total, that top-ups = balance + held + charged.

    Balances and ledger sums are read by one statement, so they describe one moment even
    while jobs settle around it.
    """
    def total(*kinds: str) -> Any:
        amount = case((LedgerEntry.kind.in_(kinds), LedgerEntry.amount_micros), else_=0)
        return func.coalesce(func.sum(amount), 0)

    sums = (
        select(LedgerEntry.token_id, total("topup").label("topups"),
               total("hold").label("holds"), total(*CHARGED).label("charged"),
               total(*REFUNDED).label("refunded"))
        .group_by(LedgerEntry.token_id).subquery()
    )
    query = (
        select(Token.id, Token.name, Token.balance_micros, Token.held_micros, sums.c.topups,
               sums.c.holds, sums.c.charged, sums.c.refunded)
        .outerjoin(sums, sums.c.token_id == Token.id).order_by(Token.id)
    )
    balances = [_token_balance(row) for row in (await session.execute(query)).all()]
    stale = await _stale_holds(session, now() - max_age_s)
    grand = {name: sum(int(row[name]) for row in balances) for name in MONEY_FIELDS}
    return {
        "object": "reconciliation",
        "ok": all(row["ok"] for row in balances) and not stale,
        "total": _usd(grand),
        "tokens": [_usd(row) for row in balances],
        "stale_holds": stale,
    }


def _usd(row: dict[str, Any]) -> dict[str, Any]:
    return {f"{k}_usd" if k in MONEY_FIELDS else k: micros_to_usd(v) if k in MONEY_FIELDS else v
            for k, v in row.items()}


def _token_balance(row: Any) -> dict[str, Any]:
    topups, holds = int(row.topups or 0), int(row.holds or 0)
    charged, refunded = int(row.charged or 0), int(row.refunded or 0)
    balanced = topups == row.balance_micros + row.held_micros + charged
    holds_settled = holds == charged + refunded + row.held_micros
    return {
        "token_id": row.id, "name": row.name, "topups": topups,
        "balance": row.balance_micros, "held": row.held_micros, "charged": charged,
        "refunded": refunded, "ok": balanced and holds_settled,
    }


async def _stale_holds(session: AsyncSession, before: float) -> list[dict[str, Any]]:
    result = await session.execute(
        select(Job.id, Job.token_id, Job.price_micros, Job.created_at, Job.status)
        .where(Job.status.in_(UNFINISHED), Job.created_at < before, Job.settlement.is_(None))
        .order_by(Job.created_at).limit(1000)
    )
    return [{"video_id": row.id, "token_id": row.token_id,
             "held_usd": micros_to_usd(row.price_micros), "created_at": int(row.created_at),
             "status": row.status} for row in result.all()]
