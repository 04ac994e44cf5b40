"""The `kraft` command line.

Every command that talks to the quorum takes `--bootstrap-server host:port,...` (default: the
local quorum) and `--json` where it prints data. Errors print one line and exit non-zero.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import trio
import typer
from rich.console import Console
from rich.table import Table

from controller.localquorum import LocalQuorum, QuorumError
from controller.node.admin_client import AdminError, fetch_all_statuses, fetch_status
from controller.node.config import Address, ConfigError, NodeConfig, parse_bootstrap
from controller.zkcli import zk_app

DEFAULT_BOOTSTRAP = "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"

app = typer.Typer(
    help="KRaft-style controller quorum.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
quorum_app = typer.Typer(help="Run and inspect the controller quorum.", no_args_is_help=True)
controller_app = typer.Typer(help="Run one controller process.", no_args_is_help=True)
app.add_typer(quorum_app, name="quorum")
app.add_typer(zk_app, name="zk")
app.add_typer(controller_app, name="controller")

BootstrapOpt = Annotated[
    str,
    typer.Option("--bootstrap-server", "-b", help="Controllers' client addresses, host:port,..."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def make_console() -> Console:
    # Tables stay readable when piped (rich assumes 80 columns without a terminal).
    return Console() if sys.stdout.isatty() else Console(width=160)


def fail(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _servers(bootstrap: str) -> list[Address]:
    try:
        return parse_bootstrap(bootstrap)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


# ---------------------------------------------------------------------- controller run


@controller_app.command("run")
def controller_run(
    config: Annotated[Path | None, typer.Option(help="TOML configuration file.")] = None,
    node_id: Annotated[int | None, typer.Option(help="This controller's id.")] = None,
    voters: Annotated[
        str | None, typer.Option(help="Comma-separated id@host:raft_port of every voter.")
    ] = None,
    observers: Annotated[str | None, typer.Option(help="id@host:raft_port of observers.")] = None,
    client_port: Annotated[int | None, typer.Option(help="ZooKeeper-style client port.")] = None,
    client_host: Annotated[str | None, typer.Option(help="Client listen host.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Log and snapshot directory.")] = None,
    cluster_id: Annotated[
        str | None, typer.Option(help="Cluster id (default kraft-local).")
    ] = None,
    election_timeout_ms: Annotated[int | None, typer.Option(help="Default 200.")] = None,
    heartbeat_interval_ms: Annotated[int | None, typer.Option(help="Default 50.")] = None,
    fsync: Annotated[str | None, typer.Option(help="always (default) or never.")] = None,
    snapshot_interval_entries: Annotated[int | None, typer.Option()] = None,
    tick_time_ms: Annotated[int | None, typer.Option(help="ZooKeeper tickTime (2000).")] = None,
    max_client_cnxns: Annotated[
        int | None, typer.Option(help="Connections per client address (0 = unlimited).")
    ] = None,
    super_digest: Annotated[
        str | None, typer.Option(help="super:<base64 sha1> admin identity.")
    ] = None,
    four_letter_word_whitelist: Annotated[
        str | None, typer.Option("--4lw-whitelist", help="Comma-separated words, or *.")
    ] = None,
    jute_max_buffer: Annotated[int | None, typer.Option(help="Max request bytes.")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run one controller until SIGTERM/SIGINT (flags override the config file)."""
    from controller.node.main import run_controller, setup_logging

    overrides: dict[str, Any] = {
        "node_id": node_id,
        "voters": voters,
        "observers": observers,
        "client_port": client_port,
        "client_host": client_host,
        "data_dir": str(data_dir) if data_dir else None,
        "cluster_id": cluster_id,
        "election_timeout_ms": election_timeout_ms,
        "heartbeat_interval_ms": heartbeat_interval_ms,
        "fsync": fsync,
        "snapshot_interval_entries": snapshot_interval_entries,
        "tick_time_ms": tick_time_ms,
        "max_client_cnxns": max_client_cnxns,
        "super_digest": super_digest,
        "four_letter_word_whitelist": four_letter_word_whitelist,
        "jute_max_buffer": jute_max_buffer,
    }
    try:
        if config is not None:
            cfg = NodeConfig.load(config, overrides)
        else:
            cfg = NodeConfig.from_mapping({k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    setup_logging(log_level)
    raise typer.Exit(run_controller(cfg))


# ---------------------------------------------------------------------- quorum status


def print_status(status: dict[str, Any], console: Console) -> None:
    console.print(
        f"LeaderId: {status['leader_id']}  LeaderEpoch: {status['term']}  "
        f"HighWatermark: {status['commit_index']}  (answered by node {status['node_id']}, "
        f"{status['role']})",
        highlight=False,
    )
    table = Table(
        "NodeId", "Role", "ClientAddress", "LogEndOffset", "Lag", "LastContactMs",
        "Sessions", "Znodes", "Watches", "Conns",
    )  # fmt: skip
    per = {c["node_id"]: c.get("service", {}) for c in status.get("controllers", [])}
    for kind, members in (("voter", status["voters"]), ("observer", status["observers"])):
        for m in members:
            role = "leader" if m["id"] == status["leader_id"] else kind
            svc = per.get(m["id"], {})
            table.add_row(
                str(m["id"]),
                role,
                m["client_address"] or "?",
                "?" if m["log_end"] is None else str(m["log_end"]),
                "?" if m["lag"] is None else str(m["lag"]),
                "?" if m["last_contact_ms"] is None else str(m["last_contact_ms"]),
                *(str(svc.get(k, "?")) for k in ("sessions", "znodes", "watches", "connections")),
            )
    console.print(table)


def status_json(status: dict[str, Any]) -> dict[str, Any]:
    keys: tuple[str, ...] = (
        "id", "client_address", "raft_address", "log_end", "lag", "last_contact_ms"
    )  # fmt: skip
    per = {c["node_id"]: c for c in status.get("controllers", [])}
    for m in status["voters"] + status["observers"]:
        c = per.get(m["id"], {})
        service = c.get("service", {})
        m["role"] = c.get("role")
        m["sessions"] = service.get("sessions")
        m["znodes"] = service.get("znodes")
        m["watches"] = service.get("watches")
        m["connections"] = service.get("connections")
    keys = (*keys, "role", "sessions", "znodes", "watches", "connections")
    return {
        "leader_id": status["leader_id"],
        "term": status["term"],
        "commit_index": status["commit_index"],
        "answered_by": status["node_id"],
        "voters": [{k: m[k] for k in keys} for m in status["voters"]],
        "observers": [{k: m[k] for k in keys} for m in status["observers"]],
    }


@quorum_app.command("status")
def quorum_status(
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP, json_: JsonOpt = False
) -> None:
    """Leader, term, high watermark and each member's replication state."""
    servers = _servers(bootstrap_server)
    try:
        status = trio.run(fetch_status, servers)
    except AdminError as exc:
        raise fail(str(exc)) from None
    status["controllers"] = trio.run(fetch_all_statuses, status)
    if json_:
        print(json.dumps(status_json(status)))
    else:
        print_status(status, make_console())


# ---------------------------------------------------------------------- quorum start


@quorum_app.command("start")
def quorum_start(
    controllers: Annotated[int, typer.Option(min=1, max=9, help="Number of voters.")] = 3,
    data_dir: Annotated[Path, typer.Option(help="Parent of each controller's data dir.")] = Path(
        "./kraft-data"
    ),
    base_port: Annotated[int, typer.Option(help="First client port (2181, 2182, ...).")] = 2181,
    raft_base_port: Annotated[
        int | None, typer.Option(help="First Raft port (default base-port + 100).")
    ] = None,
    fsync: Annotated[str, typer.Option(help="always or never.")] = "always",
    cluster_id: Annotated[str, typer.Option(help="Cluster id.")] = "kraft-local",
    log_level: Annotated[str, typer.Option(help="Controllers' logging level.")] = "WARNING",
) -> None:
    """Start N local controller processes; Ctrl-C or SIGTERM stops them all."""
    if fsync not in ("always", "never"):
        raise fail("--fsync must be 'always' or 'never'", 2)
    raft_base = raft_base_port if raft_base_port is not None else base_port + 100
    quorum = LocalQuorum(
        data_dir,
        controllers=controllers,
        client_ports=[base_port + i for i in range(controllers)],
        raft_ports=[raft_base + i for i in range(controllers)],
        fsync=fsync == "always",
        cluster_id=cluster_id,
        log_level=log_level,
        log_to_files=False,
    )
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    console = make_console()
    try:
        quorum.start()
        console.print(f"connect string: [bold]{quorum.connect_string}[/bold]", highlight=False)
        try:
            status = quorum.wait_for_leader(15.0)
        except QuorumError as exc:
            raise fail(str(exc)) from None
        status["controllers"] = trio.run(fetch_all_statuses, status)
        print_status(status, console)
        console.print("quorum running; Ctrl-C to stop", highlight=False)
        while not stop:
            exited = quorum.exited()
            if exited:
                node, code = next(iter(exited.items()))
                raise fail(f"controller {node} exited unexpectedly (code {code})")
            time.sleep(0.2)
    finally:
        quorum.stop()
        console.print("quorum stopped", highlight=False)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app(prog_name="kraft")


if __name__ == "__main__":
    main()
