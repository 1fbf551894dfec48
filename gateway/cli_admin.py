"""Operator commands on the same config and database as `serve`: tokens, usage, jobs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from gateway.config import ConfigError, Settings, config_path, load_settings
from gateway.core import Core, open_core
from gateway.db import create_engine
from gateway.errors import GatewayError
from gateway.ledger import reports
from gateway.ledger.pricing import micros_to_usd
from gateway.tokens.endpoints import LedgerEntryOut
from gateway.tokens.schemas import TokenCreate, TokenOut, TokenUpdate, TopUp
from gateway.tokens.service import TokenService
from gateway.videos.admin import AdminVideo
from gateway.videos.repository import JobRepository, admin_page

T = TypeVar("T")
# Ids must print whole even when the output is piped (rich assumes 80 columns then).
console = Console(width=None if Console().is_terminal else 200)
err = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 200)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (default: $GATEWAY_CONFIG, else "
                 "./config.yaml if present)."),
]
FormatOption = Annotated[str, typer.Option("--format", help="table, json or csv.")]

LEDGER_LIMIT = 100_000  # a token's whole history, as `jobs show` reads it

tokens_app = typer.Typer(help="Issue and manage gateway tokens.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect video jobs.", no_args_is_help=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def load(config: Path | None, **overrides: object) -> Settings:
    if config_path(config) is None:
        # Said out loud: with the defaults, a group or database of the operator's config is
        # "unknown", which reads like a bug rather than a missing file.
        err.print("note: no config file (--config, GATEWAY_CONFIG or ./config.yaml); "
                  "using the built-in defaults", highlight=False)
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def run(config: Path | None, action: Callable[[Core], Awaitable[T]]) -> T:
    """Run one action against the database, refusing a database that is not migrated.

    Only the database's resources are built: no operator command needs an upstream client.
    """
    from gateway.migrate import current_revision, head_revision

    settings = load(config)

    async def check_schema() -> None:
        engine = create_engine(settings.database_url)
        try:
            revision = await current_revision(engine)
        except Exception as exc:
            raise fail(f"cannot open the database: {type(exc).__name__}: {exc}") from None
        finally:
            await engine.dispose()
        if revision != head_revision():
            raise fail("the database is not migrated; run `gateway migrate` first")

    async def main() -> T:
        await check_schema()
        async with open_core(settings) as core:
            return await action(core)

    try:
        return asyncio.run(main())
    except GatewayError as exc:
        raise fail(exc.message) from None


# Fields whose option is not simply --field-name.
OPTIONS = {"balance_usd": "--balance", "amount_usd": "AMOUNT", "models": "--model",
           "max_concurrent_jobs": "--max-jobs"}


def _option(loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else ""
    return OPTIONS.get(field, "--" + field.replace("_", "-"))


def _validated(model: type[Any], **values: Any) -> Any:
    """Build a request as the admin API would, so both read their input the same way."""
    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{_option(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise fail(problems) from None


def _token_table(tokens: list[TokenOut]) -> Table:
    table = Table("id", "name", "group", "billing", "balance", "held", "jobs", "state")
    for token in tokens:
        state = "revoked" if token.revoked else ("disabled" if token.disabled else "active")
        table.add_row(token.id, token.name, token.group, token.billing_mode, token.balance_usd,
                      token.held_usd, str(token.active_jobs), state)
    return table


def _emit(rows: list[dict[str, Any]], table: Table, fmt: str) -> None:
    if fmt == "json":
        console.print_json(json.dumps(rows))
    elif fmt == "table":
        console.print(table)
    else:
        raise fail("--format must be table or json")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="A label for the customer.")],
    group: Annotated[str, typer.Option(help="Group (class of service).")],
    billing_mode: Annotated[str, typer.Option(help="per_second or per_call.")] = "per_second",
    balance: Annotated[str, typer.Option(help="Opening balance in USD.")] = "0",
    model: Annotated[list[str] | None, typer.Option(help="Allowed model (repeat).")] = None,
    rpm: Annotated[int | None, typer.Option(help="Creates per minute.")] = None,
    max_jobs: Annotated[int | None, typer.Option(help="Unfinished jobs at once.")] = None,
    expires_at: Annotated[str | None, typer.Option(help="ISO date or epoch.")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="Where job events are sent.")] = None,
    config: ConfigOption = None,
) -> None:
    """Issue a token; its secret is printed once, here, and never again."""
    spec = _validated(TokenCreate, name=name, group=group, billing_mode=billing_mode,
                      balance_usd=balance, models=model or [], rpm=rpm,
                      max_concurrent_jobs=max_jobs, expires_at=expires_at,
                      webhook_url=webhook_url)
    token, plaintext = run(config, lambda ctx: TokenService(ctx).create(spec))
    console.print(_token_table([TokenOut.of(token)]))
    console.print(f"token: [bold]{plaintext}[/bold]  (shown once; store it now)",
                  highlight=False)
    _print_webhook_secret(token.webhook_secret)


def _print_webhook_secret(secret: str | None) -> None:
    if secret:
        console.print(f"webhook secret: [bold]{secret}[/bold]  (shown once; store it now)",
                      highlight=False)


@tokens_app.command("list")
def tokens_list(config: ConfigOption = None, fmt: FormatOption = "table") -> None:
    """List tokens with their balances."""
    tokens = [TokenOut.of(t) for t in run(config, lambda ctx: TokenService(ctx).list())]
    _emit([t.model_dump() for t in tokens], _token_table(tokens), fmt)


@tokens_app.command("show")
def tokens_show(token_id: str, config: ConfigOption = None, fmt: FormatOption = "table") -> None:
    """Show one token and its ledger: every hold, capture, refund, release and top-up."""

    async def action(ctx: Core) -> tuple[TokenOut, list[LedgerEntryOut]]:
        service = TokenService(ctx)
        token = TokenOut.of(await service.get(token_id))
        entries = await service.ledger(token_id, after=None, limit=LEDGER_LIMIT)
        return token, [LedgerEntryOut.of(entry) for entry in entries]

    token, entries = run(config, action)
    if fmt == "json":
        console.print_json(json.dumps({**token.model_dump(),
                                       "ledger": [e.model_dump() for e in entries]}))
        return
    _emit([token.model_dump()], _token_table([token]), fmt)
    ledger = Table("entry", "time (UTC)", "kind", "amount", "job", "note")
    for entry in entries:
        ledger.add_row(str(entry.id), _when(entry.created_at), entry.kind, entry.amount_usd,
                       entry.job_id or "-", entry.note or "")
    console.print(ledger)


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


@tokens_app.command("update")
def tokens_update(
    token_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    group: Annotated[str | None, typer.Option()] = None,
    billing_mode: Annotated[str | None, typer.Option()] = None,
    model: Annotated[list[str] | None, typer.Option(help="Allowed model (repeat).")] = None,
    rpm: Annotated[int | None, typer.Option()] = None,
    max_jobs: Annotated[int | None, typer.Option()] = None,
    disabled: Annotated[bool | None, typer.Option("--disabled/--enabled")] = None,
    webhook_url: Annotated[str | None, typer.Option(
        help="Where job events are sent; an empty value removes it.")] = None,
    config: ConfigOption = None,
) -> None:
    """Change a token's settings."""
    change = _validated(TokenUpdate, name=name, group=group, billing_mode=billing_mode,
                        models=model, rpm=rpm, max_concurrent_jobs=max_jobs, disabled=disabled,
                        webhook_url=webhook_url)
    if webhook_url == "":
        change.webhook_url = None
    token, webhook_secret = run(config, lambda ctx: TokenService(ctx).update(token_id, change))
    console.print(_token_table([TokenOut.of(token)]))
    _print_webhook_secret(webhook_secret)


@tokens_app.command("rotate-webhook-secret")
def tokens_rotate_webhook_secret(token_id: str, config: ConfigOption = None) -> None:
    """Give a token a new webhook secret; the old one keeps signing for the grace period."""
    _, secret = run(config, lambda ctx: TokenService(ctx).rotate_webhook_secret(token_id))
    _print_webhook_secret(secret)


@tokens_app.command("topup")
def tokens_topup(
    token_id: str,
    amount: Annotated[str, typer.Argument(help="USD to add, e.g. 25.00")],
    note: Annotated[str | None, typer.Option()] = None,
    config: ConfigOption = None,
) -> None:
    """Add money to a token's balance."""
    spec = _validated(TopUp, amount_usd=amount, note=note)
    token = run(config, lambda ctx: TokenService(ctx).topup(token_id, spec))
    console.print(_token_table([TokenOut.of(token)]))


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, config: ConfigOption = None) -> None:
    """Revoke a token: it stops working at once."""
    token = run(config, lambda ctx: TokenService(ctx).revoke(token_id))
    console.print(_token_table([TokenOut.of(token)]))


def usage(
    config: ConfigOption = None,
    group_by: Annotated[str, typer.Option(help="token, group, model, upstream or day.")] = "token",
    since: Annotated[str | None, typer.Option("--from", help="ISO date or epoch.")] = None,
    until: Annotated[str | None, typer.Option("--to", help="ISO date or epoch.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Usage and money per token, group, model, upstream or day."""
    if group_by not in reports.GROUP_BY:
        raise fail(f"--group-by must be one of {', '.join(reports.GROUP_BY)}")

    async def action(ctx: Core) -> reports.Usage:
        async with ctx.sessions() as session:
            return await reports.usage(
                session, group_by=group_by,
                since=reports.parse_time(since, "from"), until=reports.parse_time(until, "to"))

    result = run(config, action)
    if fmt == "csv":
        typer.echo(result.as_csv(), nl=False)
        return
    if fmt == "json":
        console.print_json(json.dumps(result.as_json()))
        return
    table = Table(group_by, "jobs", "completed", "failed", "seconds", "charged", "refunded",
                  "held", "cost", "margin")
    for row in [*result.rows, result.total()]:
        data = row.operator()
        label = f"{row.key} ({row.name})" if row.name else row.key
        table.add_row(label, *(str(data[c]) for c in reports.OPERATOR_COLUMNS))
    console.print(table)


def _job_table(jobs: list[AdminVideo]) -> Table:
    table = Table("id", "token", "status", "model", "upstream", "age", "price", "settled",
                  "archive")
    for job in jobs:
        table.add_row(job.id, job.token_id, job.status, job.model, job.upstream or "-",
                      f"{job.age_s}s", job.price_usd, job.settlement or "held",
                      job.archive_state or "-")
    return table


@jobs_app.command("list")
def jobs_list(
    config: ConfigOption = None,
    status: Annotated[str | None, typer.Option(help="Stored status filter.")] = None,
    token_id: Annotated[str | None, typer.Option()] = None,
    archive: Annotated[str | None, typer.Option(
        help="Archive state filter: pending, stored, failed or expired.")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    fmt: FormatOption = "table",
) -> None:
    """Recent jobs with their upstream, age, money and archive state."""
    from gateway.archive.repository import STATES
    from gateway.db import now

    if archive is not None and archive not in STATES:
        raise fail(f"--archive must be one of {', '.join(STATES)}")

    async def action(ctx: Core) -> list[AdminVideo]:
        async with ctx.sessions() as session:
            jobs = await admin_page(session, token_id=token_id,
                                    statuses=[status] if status else [], after_seq=None,
                                    limit=limit, archive_state=archive)
        return [AdminVideo.of_job(job, now()) for job in jobs]

    jobs = run(config, action)
    _emit([j.model_dump() for j in jobs], _job_table(jobs), fmt)


@jobs_app.command("show")
def jobs_show(video_id: str, config: ConfigOption = None) -> None:
    """One job in full, with its ledger entries."""
    from gateway.db import now
    from gateway.ledger.repository import LedgerRepository

    async def action(ctx: Core) -> tuple[AdminVideo, list[Any]]:
        async with ctx.sessions() as session:
            job = await JobRepository(session).get(video_id)
            if job is None:
                raise fail(f"no job with id {video_id!r}")
            entries = await LedgerRepository(session).entries(job.token_id, after=None,
                                                               limit=100_000)
        return AdminVideo.of_job(job, now()), [e for e in entries if e.job_id == video_id]

    job, entries = run(config, action)
    console.print(_job_table([job]))
    for entry in entries:
        console.print(f"  {entry.kind:8} {micros_to_usd(entry.amount_micros)} USD  "
                      f"{entry.note or ''}", highlight=False)
