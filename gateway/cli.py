"""Command line: serve, migrate, simulate, and the operator commands."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Annotated

import typer

from gateway.cli_admin import ConfigOption, jobs_app, load, tokens_app, usage
from gateway.config import Settings, config_path
from gateway.webhooks.cli import webhooks_app

app = typer.Typer(help="Video Gateway: OpenAI-compatible video generation gateway.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

def _require_admin_token(settings: Settings) -> None:
    if not settings.admin_token:
        typer.secho("error: invalid configuration: admin_token: not set (set it in the config "
                    "file or in GATEWAY_ADMIN_TOKEN)", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)


def _migrate(settings: Settings) -> None:
    from gateway.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except Exception as exc:
        typer.secho(f"error: cannot migrate the database: {type(exc).__name__}: {exc}",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations at start.")] = True,
    with_simulator: Annotated[bool, typer.Option(
        help="Also run a simulator for every upstream the config points at this machine, in "
             "its flavor, started before the gateway and stopped with it."),
    ] = False,
    simulator_port: Annotated[int | None, typer.Option(
        help="Run only an openai-flavor simulator, on this port.")] = None,
) -> None:
    """Run the gateway."""
    from gateway.logs import configure_logging
    from gateway.server import run
    from gateway.simulator_child import (
        SimulatorFailed,
        SimulatorSpec,
        loopback_simulators,
        simulator_children,
    )

    settings = load(config, host=host, port=port)
    _require_admin_token(settings)
    configure_logging(settings.log_level)
    if migrate:
        _migrate(settings)
    try:
        specs = ([SimulatorSpec(simulator_port)] if simulator_port is not None
                 else loopback_simulators(settings.upstreams))
        with simulator_children(specs) if with_simulator else nullcontext():
            run(settings, workers=workers, config_file=config_path(config))
    except SimulatorFailed as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Apply database migrations and exit."""
    settings = load(config)
    _migrate(settings)
    typer.echo("database is up to date")


@app.command()
def simulate(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9100,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    flavor: Annotated[str, typer.Option(
        help="openai, compat, ark, dashscope, kling, gemini, minimax or vidu.")] = "openai",
    duration: Annotated[float, typer.Option(help="Seconds a job takes.")] = 2.0,
    api_key: Annotated[list[str] | None, typer.Option(
        help="Accept only this key (repeatable; kling: ACCESS_KEY:SECRET_KEY).")] = None,
    exit_with_parent: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Run a local simulator of a video provider, speaking the flavor's own API."""
    from gateway.simulator import FLAVORS, run_simulator

    if flavor not in FLAVORS:
        typer.secho(f"error: --flavor must be one of {', '.join(FLAVORS)}",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if exit_with_parent:
        from gateway.simulator_child import exit_with_parent as watch_parent

        watch_parent()
    run_simulator(host=host, port=port, flavor=flavor, duration_s=duration, api_keys=api_key)


app.add_typer(tokens_app, name="tokens")
app.add_typer(jobs_app, name="jobs")
app.add_typer(webhooks_app, name="webhooks")
app.command("usage")(usage)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
