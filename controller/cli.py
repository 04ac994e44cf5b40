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
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from controller.cli_common import DEFAULT_BOOTSTRAP, BootstrapOpt, JsonOpt, fail, make_console
from controller.kafka_cli import broker_app, brokers_app, partitions_app, topics_app
from controller.localquorum import LocalQuorum, QuorumError
from controller.node.admin_client import AdminError, fetch_all_statuses, fetch_status
from controller.node.config import Address, ConfigError, NodeConfig, parse_bootstrap
from controller.zkcli import zk_app

# rich_markup_mode=None: plain click help (rich mode reads `:id:` in help text as an emoji
# code and shows every flag as `<bool>`).
app = typer.Typer(
    help="KRaft-style controller quorum.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
quorum_app = typer.Typer(
    help="Run and inspect the controller quorum.", no_args_is_help=True, rich_markup_mode=None
)
controller_app = typer.Typer(
    help="Run one controller process.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(quorum_app, name="quorum")
app.add_typer(zk_app, name="zk")
app.add_typer(controller_app, name="controller")
app.add_typer(topics_app, name="topics")
app.add_typer(brokers_app, name="brokers")
app.add_typer(partitions_app, name="partitions")
app.add_typer(broker_app, name="broker")


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
    election_timeout_ms: Annotated[int | None, typer.Option(help="Default 300.")] = None,
    heartbeat_interval_ms: Annotated[int | None, typer.Option(help="Default 100.")] = None,
    fsync: Annotated[str | None, typer.Option(help="always (default) or never.")] = None,
    snapshot_interval_entries: Annotated[
        int | None, typer.Option(help="Log entries between snapshots (100000).")
    ] = None,
    tick_time_ms: Annotated[int | None, typer.Option(help="ZooKeeper tickTime (2000).")] = None,
    max_client_cnxns: Annotated[
        int | None, typer.Option(help="Connections per client address (0 = unlimited).")
    ] = None,
    max_outstanding_requests: Annotated[
        int | None,
        typer.Option(help="Requests queued per connection before it is not read (1000; 1-100000)."),
    ] = None,
    global_outstanding_limit: Annotated[
        int | None,
        typer.Option(
            help="Requests queued on this controller before no client is read (1000; 1-100000)."
        ),
    ] = None,
    super_digest: Annotated[
        str | None, typer.Option(help="super:<base64 sha1> admin identity.")
    ] = None,
    four_letter_word_whitelist: Annotated[
        str | None, typer.Option("--4lw-whitelist", help="Comma-separated words, or *.")
    ] = None,
    jute_max_buffer: Annotated[
        int | None, typer.Option(help="Max request frame bytes (0xfffff).")
    ] = None,
    extended_types_enabled: Annotated[
        bool | None,
        typer.Option(
            "--extended-types-enabled/--no-extended-types",
            help="Allow TTL nodes, as ZooKeeper's extendedTypesEnabled (off).",
        ),
    ] = None,
    leader_imbalance_check_interval_seconds: Annotated[
        float | None, typer.Option(help="Seconds between preferred-leader checks (300).")
    ] = None,
    leader_imbalance_per_broker_percentage: Annotated[
        int | None, typer.Option(help="Leader imbalance per broker that triggers it (10).")
    ] = None,
    auto_leader_rebalance_enable: Annotated[
        bool | None,
        typer.Option(
            "--auto-leader-rebalance-enable/--no-auto-leader-rebalance",
            help="Move leadership back to preferred replicas automatically (on).",
        ),
    ] = None,
    admin_port: Annotated[
        int | None,
        typer.Option(help="HTTP admin port: /metrics, /commands, console (8080; -1 = off)."),
    ] = None,
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
        "max_outstanding_requests": max_outstanding_requests,
        "global_outstanding_limit": global_outstanding_limit,
        "super_digest": super_digest,
        "four_letter_word_whitelist": four_letter_word_whitelist,
        "jute_max_buffer": jute_max_buffer,
        "extended_types_enabled": extended_types_enabled,
        "leader_imbalance_check_interval_seconds": leader_imbalance_check_interval_seconds,
        "leader_imbalance_per_broker_percentage": leader_imbalance_per_broker_percentage,
        "auto_leader_rebalance_enable": auto_leader_rebalance_enable,
        "admin_port": admin_port,
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
    """The table shows exactly `status_json`: each column header is its key in CamelCase
    (Kafka's kafka-metadata-quorum names: leader_id is LeaderId, log_end_offset is
    LogEndOffset, ...)."""
    data = status_json(status)

    def header(key: str) -> str:
        return "".join(word.capitalize() for word in key.split("_"))

    def cell(value: Any) -> str:
        return "?" if value is None or value == "" else str(value)

    top = [k for k in data if k not in ("voters", "observers")]
    console.print("  ".join(f"{header(k)}: {cell(data[k])}" for k in top), highlight=False)
    members = data["voters"] + data["observers"]
    keys = list(members[0]) if members else []
    table = Table(*(header(k) for k in keys))
    for m in members:
        table.add_row(*(cell(m[k]) for k in keys))
    console.print(table)


def status_json(status: dict[str, Any]) -> dict[str, Any]:
    """`kraft quorum status --json`: snake_case of the table's column names."""
    per = {c["node_id"]: c for c in status.get("controllers", [])}

    def member(m: dict[str, Any], kind: str) -> dict[str, Any]:
        own = per.get(m["id"], {})
        service = own.get("service", {})
        # The controller's own view of its role if it answered, else the membership's.
        role = own.get("role") or ("leader" if m["id"] == status["leader_id"] else kind)
        return {
            "node_id": m["id"],
            "role": role,
            "client_address": m["client_address"],
            "raft_address": m["raft_address"],
            "log_end_offset": m["log_end"],
            "lag": m["lag"],
            "last_contact_ms": m["last_contact_ms"],
            "sessions": service.get("sessions"),
            "znodes": service.get("znodes"),
            "watches": service.get("watches"),
            "connections": service.get("connections"),
        }

    return {
        "leader_id": status["leader_id"],
        "leader_epoch": status["term"],
        "high_watermark": status["commit_index"],
        "answered_by": status["node_id"],
        "voters": [member(m, "voter") for m in status["voters"]],
        "observers": [member(m, "observer") for m in status["observers"]],
    }


@quorum_app.command("status")
def quorum_status(
    bootstrap_server: BootstrapOpt = DEFAULT_BOOTSTRAP, json_: JsonOpt = False
) -> None:
    """Leader, term, high watermark and each member's replication state (exit 1 if the
    quorum has no leader)."""
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
    if status["leader_id"] is None:
        # Printed first for diagnosis; scripts learn from the exit code that the quorum has
        # no leader (kafka-metadata-quorum fails the same way).
        raise fail(f"quorum: no leader (as seen by controller {status['node_id']})")


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
    admin_base_port: Annotated[
        int, typer.Option(help="First HTTP admin port: console, /metrics (8080, 8081, ...).")
    ] = 8080,
    log_level: Annotated[str, typer.Option(help="Controllers' logging level.")] = "WARNING",
    restart_delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds before restarting a controller that exited.")
    ] = 1.0,
    no_restart: Annotated[
        bool, typer.Option("--no-restart", help="Leave a controller that exited down.")
    ] = False,
) -> None:
    """Start N local controller processes and restart any that exits; Ctrl-C or SIGTERM stops
    them all."""
    from controller.localquorum import QuorumInterrupted, QuorumNotReady, format_seconds

    if fsync not in ("always", "never"):
        raise fail("--fsync must be 'always' or 'never'", 2)
    raft_base = raft_base_port if raft_base_port is not None else base_port + 100
    try:
        quorum = LocalQuorum(
            data_dir,
            controllers=controllers,
            client_ports=[base_port + i for i in range(controllers)],
            raft_ports=[raft_base + i for i in range(controllers)],
            admin_ports=[admin_base_port + i for i in range(controllers)],
            fsync=fsync == "always",
            cluster_id=cluster_id,
            log_level=log_level,
            log_to_files=False,
            restart=not no_restart,
            restart_delay=restart_delay,
            exit_with_parent=True,  # a SIGKILLed `kraft quorum start` leaves no orphans
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    try:
        quorum.check_ports()  # before printing or starting anything
    except QuorumError as exc:
        raise fail(str(exc)) from None
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    console = make_console()

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    try:
        quorum.start()
        console.print(f"connect string: [bold]{quorum.connect_string}[/bold]", highlight=False)
        for i in quorum.ids:
            say(
                f"controller {i}: pid {quorum.pid(i)}, client {quorum.client_address(i)}, "
                f"raft {quorum.raft_address(i)}, data {quorum.node_data_dir(i)}, "
                f"admin {quorum.admin_url(i)}"
            )
        try:
            status = quorum.wait_until_ready(15.0, should_stop=lambda: stop)
        except QuorumInterrupted:
            return
        except QuorumNotReady as exc:
            if exc.status is None:
                raise fail(str(exc)) from None
            Console(stderr=True).print(f"warning: {exc}", highlight=False, markup=False)
            status = exc.status
        except QuorumError as exc:
            raise fail(str(exc)) from None
        print_status(status, console)
        if no_restart:
            say("quorum running; a controller that exits stays down (--no-restart); Ctrl-C to stop")
        else:
            say(
                f"quorum running; a controller that exits restarts after "
                f"{format_seconds(restart_delay)} s; Ctrl-C to stop"
            )
        while not stop:
            for event in quorum.supervise():
                say(str(event))
            time.sleep(0.1)
    finally:
        quorum.stop()
        console.print("quorum stopped", highlight=False)


# ---------------------------------------------------------------------- demo


@app.command("demo")
def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where controllers keep their logs (default: a temporary directory)."),
    ] = None,
    keep_running: Annotated[
        bool, typer.Option(help="Leave quorum and brokers running after the steps.")
    ] = False,
    session_timeout_ms: Annotated[
        int, typer.Option(min=4000, max=40000, help="Brokers' session timeout.")
    ] = 4000,
) -> None:
    """Start 3 controllers and 4 brokers, create topic 'demo', then kill a broker, kill the
    active controller, restart both and stop a broker cleanly, timing each failover."""
    from controller.demo import run_demo

    raise typer.Exit(
        run_demo(data_dir, keep_running=keep_running, session_timeout_ms=session_timeout_ms)
    )


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        code = app(prog_name="kraft", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)
        code = exc.exit_code
    except UsageError as exc:
        # One line (click prints usage, a hint and the error on three), exit 2.
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split()).rstrip(".")
        code = fail(f"{message}{hint}", exc.exit_code).exit_code
    except ClickException as exc:
        code = fail(exc.format_message(), exc.exit_code).exit_code
    except typer.Abort:
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
