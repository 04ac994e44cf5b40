"""The demo broker's command line (`python -m broker_demo`, also `kraft broker run`)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from broker_demo.broker import (
    DEFAULT_SESSION_TIMEOUT_MS,
    DEFAULT_SHUTDOWN_TIMEOUT_MS,
    BrokerConfig,
    run_broker,
)
from controller.cli_common import DEFAULT_BOOTSTRAP


def run(
    broker_id: Annotated[int, typer.Option("--id", min=0, help="This broker's id.")],
    rack: Annotated[str | None, typer.Option(help="Rack (broker.rack) for placement.")] = None,
    host: Annotated[str, typer.Option(help="Host to listen on and advertise.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port (status requests); 0: chosen by the OS.")
    ] = 0,
    bootstrap_server: Annotated[
        str,
        typer.Option(
            "--bootstrap-server", "-b", help="Controllers' client addresses, host:port,..."
        ),
    ] = DEFAULT_BOOTSTRAP,
    session_timeout_ms: Annotated[
        int, typer.Option(min=1, help="Session timeout: how long a crashed broker stays live.")
    ] = DEFAULT_SESSION_TIMEOUT_MS,
    registration_timeout_ms: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="How long to wait for an earlier registration of this id to expire "
            "(default: session timeout + 2000).",
        ),
    ] = None,
    controlled_shutdown_timeout_ms: Annotated[
        int,
        typer.Option(min=0, help="How long a controlled shutdown waits for leaderships to move."),
    ] = DEFAULT_SHUTDOWN_TIMEOUT_MS,
) -> None:
    """Run a demo broker: register under /brokers/ids/ID, follow partition leadership, and
    shut down in a controlled way on SIGTERM/SIGINT (a second signal stops at once)."""
    from controller.node.config import ConfigError, parse_bootstrap

    try:
        parse_bootstrap(bootstrap_server)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--bootstrap-server'") from None
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    config = BrokerConfig(
        broker_id=broker_id,
        bootstrap=bootstrap_server,
        host=host,
        port=port,
        rack=rack,
        session_timeout_ms=session_timeout_ms,
        registration_timeout_ms=registration_timeout_ms,
        shutdown_timeout_ms=controlled_shutdown_timeout_ms,
    )
    raise typer.Exit(run_broker(config))


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    app.command()(run)
    app(prog_name="python -m broker_demo")
