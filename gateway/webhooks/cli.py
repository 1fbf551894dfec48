"""Operator commands for webhook deliveries: list them, send one again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gateway.cli_admin import ConfigOption, FormatOption, console, run
from gateway.cli_admin import _emit as emit
from gateway.webhooks import service
from gateway.webhooks.schemas import DeliveryOut

webhooks_app = typer.Typer(help="Inspect and replay webhook deliveries.", no_args_is_help=True)


def _table(deliveries: list[DeliveryOut]) -> Table:
    table = Table("id", "token", "video", "type", "status", "attempts", "last status",
                  "last error")
    for row in deliveries:
        table.add_row(row.id, row.token_id, row.video_id, row.type, row.status,
                      str(row.attempts), str(row.last_status or "-"), row.last_error or "")
    return table


@webhooks_app.command("list")
def webhooks_list(
    config: ConfigOption = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed.")] = None,
    token_id: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
    fmt: FormatOption = "table",
) -> None:
    """Recent deliveries, newest first, with their attempts and last error."""
    rows = run(config, lambda ctx: service.deliveries(ctx, status=status, token_id=token_id,
                                                      after=None, limit=limit))
    deliveries = [DeliveryOut.of(row) for row in rows]
    emit([d.model_dump() for d in deliveries], _table(deliveries), fmt)


@webhooks_app.command("replay")
def webhooks_replay(delivery_id: str, config: ConfigOption = None) -> None:
    """Send an event again, under its own id, as soon as a delivery worker picks it up."""
    row = run(config, lambda ctx: service.replay(ctx, delivery_id))
    console.print(_table([DeliveryOut.of(row)]))
