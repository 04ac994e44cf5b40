"""Run a quorum of controller *processes* on this machine.

Used by `kraft quorum start`, by the real-process tests and by the benchmarks, so all three
exercise the same code path: `python -m controller controller run ...` per controller.

`LocalQuorum` also supervises its controllers for long-running runners (`kraft quorum start`,
`kraft demo`): call `supervise()` every ~0.1 s; it reports controllers that exited and restarts
them after `restart_delay` seconds (unless `restart=False`). Only `stop()` stops them all.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import trio

from controller.node.admin_client import AdminError, fetch_all_statuses, fetch_status
from controller.node.config import Address

RESTART_DELAY_S = 1.0
"""Default delay between a controller's exit and its restart."""
MAX_RESTART_DELAY_S = 30.0
"""Cap of the back-off for a controller that keeps failing on its own right after starting."""
STABLE_RUN_S = 10.0
"""A controller that ran this long before failing restarts after the plain `restart_delay`."""


def free_ports(count: int) -> list[int]:
    """Loopback ports the OS reports free right now (bound together, so distinct)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_bind_error(port: int) -> str | None:
    """Why a controller could not listen on `port` right now, or None if it could.

    Binds the wildcard addresses the way the controller's listeners do (SO_REUSEADDR, so
    connections of a previous run in TIME_WAIT do not count): "in use" means something is
    listening on (or holds) the port.
    """
    try:
        infos = socket.getaddrinfo(None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        infos = [(socket.AF_INET, socket.SOCK_STREAM, 0, "", ("0.0.0.0", port))]
    for family, type_, proto, _, sockaddr in infos:
        try:
            sock = socket.socket(family, type_, proto)
        except OSError:
            continue  # this address family is not available here (nor to the controller)
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "is already in use"
                if exc.errno == errno.EACCES:
                    return "cannot be bound (permission denied)"
    return None


def describe_exit(returncode: int) -> str:
    """`killed by SIGKILL` for a negative return code, else `code N`."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"code {returncode}"


def format_seconds(value: float) -> str:
    """1.0, 0.5, 0.25: one decimal unless more are needed."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


class QuorumError(Exception):
    """A controller process failed to start, or the quorum did not become ready."""


class PortInUseError(QuorumError):
    """A client or Raft port of the quorum cannot be bound (see `LocalQuorum.check_ports`)."""

    def __init__(self, message: str, port: int, node_id: int, kind: str) -> None:
        super().__init__(message)
        self.port = port
        self.node_id = node_id
        self.kind = kind  # "client", "raft" or "admin"


class QuorumNotReady(QuorumError):
    """`wait_until_ready` timed out; `status` is the last leader status seen (or None)."""

    def __init__(self, message: str, status: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.status = status


class QuorumInterrupted(QuorumError):
    """`wait_until_ready` gave up because its `should_stop` callback returned True."""


@dataclass(frozen=True)
class QuorumEvent:
    """Something `LocalQuorum.supervise()` observed or did; `str(event)` is the line to print.

    kind "exited": controller `node_id` (process `pid`) exited with `returncode`; `restart_in`
    is the delay before its restart, or None when restarts are disabled (it stays down).
    kind "restarted": controller `node_id` was started again as process `pid`.
    """

    kind: Literal["exited", "restarted"]
    node_id: int
    pid: int
    message: str
    returncode: int | None = None
    restart_in: float | None = None

    def __str__(self) -> str:
        return self.message


class LocalQuorum:
    """N controller processes with fixed client and Raft ports under one data directory.

    `restart` and `restart_delay` only matter to `supervise()`, which long-running runners
    call periodically; code that never calls it (tests, benchmarks) sees no restarts.
    Not thread-safe: call every method from one thread.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        controllers: int = 3,
        client_ports: list[int] | None = None,
        raft_ports: list[int] | None = None,
        fsync: bool = True,
        cluster_id: str = "kraft-local",
        log_level: str = "WARNING",
        extra_args: list[str] | None = None,
        log_to_files: bool = True,
        restart: bool = True,
        restart_delay: float = RESTART_DELAY_S,
        admin_ports: list[int] | None = None,
        exit_with_parent: bool = False,
    ) -> None:
        """`exit_with_parent`: each controller asks Linux to SIGTERM it when this process
        dies, even by SIGKILL, so a killed supervisor leaves no orphans. Only for callers
        that start controllers from the main thread: the signal follows the *thread* that
        started the process."""
        if controllers < 1:
            raise ValueError("a quorum needs at least one controller")
        if restart_delay < 0:
            raise ValueError("restart_delay must be >= 0")
        self.data_dir = data_dir
        self.ids = list(range(1, controllers + 1))
        if client_ports is None or raft_ports is None:
            # One call, so that the two lists cannot overlap.
            fresh = [p for p in free_ports(2 * controllers) if p not in (client_ports or [])]
            fresh = [p for p in fresh if p not in (raft_ports or [])]
            client_ports = client_ports or fresh[:controllers]
            raft_ports = raft_ports or fresh[-controllers:]
        self.client_ports = list(client_ports)
        self.raft_ports = list(raft_ports)
        if not len(self.client_ports) == len(self.raft_ports) == controllers:
            raise ValueError(f"need {controllers} client ports and {controllers} Raft ports")
        if admin_ports is None:  # HTTP admin servers (/metrics, console): free ports too
            taken = {*self.client_ports, *self.raft_ports}
            admin_ports = [p for p in free_ports(controllers + len(taken)) if p not in taken]
        self.admin_ports = list(admin_ports)[:controllers]
        if len(self.admin_ports) != controllers:
            raise ValueError(f"need {controllers} admin ports")
        self._check_port_plan()
        self.fsync = fsync
        self.cluster_id = cluster_id
        self.log_level = log_level
        self.extra_args = extra_args or []
        self.log_to_files = log_to_files
        self.restart = restart
        self.restart_delay = restart_delay
        self.exit_with_parent = exit_with_parent
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._logs: dict[int, IO[bytes]] = {}
        self._stopped = True  # until start()/start_node(): supervise() does nothing
        self._started_at: dict[int, float] = {}
        self._reported: set[int] = set()  # exits already returned by supervise()
        self._restart_at: dict[int, float] = {}  # node -> time.monotonic() of its restart
        self._quick_failures: dict[int, int] = {}

    # ------------------------------------------------------------------ ports and addresses

    def port_plan(self) -> list[tuple[int, int, str]]:
        """(port, node_id, "client" | "raft") for every port the quorum listens on."""
        plan = [(p, i, "client") for i, p in zip(self.ids, self.client_ports, strict=True)]
        plan += [(p, i, "raft") for i, p in zip(self.ids, self.raft_ports, strict=True)]
        plan += [(p, i, "admin") for i, p in zip(self.ids, self.admin_ports, strict=True)]
        return plan

    def _check_port_plan(self) -> None:
        seen: dict[int, str] = {}
        for port, node, kind in self.port_plan():
            what = f"{kind} port of controller {node}"
            if not 0 < port < 65536:
                raise ValueError(f"port {port} ({what}) is out of range 1-65535")
            if port in seen:
                raise ValueError(f"port {port} is both the {seen[port]} and the {what}")
            seen[port] = what

    def check_ports(self) -> None:
        """Raise PortInUseError for the first client or Raft port that cannot be bound now.

        Message: `port 2181 (client port of controller 1) is already in use`. Call it before
        `start()` to refuse cleanly instead of starting controllers that fail to listen.
        """
        for port, node, kind in self.port_plan():
            problem = port_bind_error(port)
            if problem is not None:
                raise PortInUseError(
                    f"port {port} ({kind} port of controller {node}) {problem}", port, node, kind
                )

    @property
    def voters(self) -> str:
        return ",".join(
            f"{i}@127.0.0.1:{p}" for i, p in zip(self.ids, self.raft_ports, strict=True)
        )

    @property
    def connect_string(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def client_address(self, node_id: int) -> Address:
        return Address("127.0.0.1", self.client_ports[node_id - 1])

    def admin_url(self, node_id: int) -> str:
        """Controller `node_id`'s HTTP admin server (console at `/`, `/metrics`, ...)."""
        return f"http://127.0.0.1:{self.admin_ports[node_id - 1]}/"

    def raft_address(self, node_id: int) -> Address:
        return Address("127.0.0.1", self.raft_ports[node_id - 1])

    def node_data_dir(self, node_id: int) -> Path:
        return self.data_dir / f"node-{node_id}"

    @property
    def addresses(self) -> list[Address]:
        return [self.client_address(i) for i in self.ids]

    # ------------------------------------------------------------------ processes

    def command(self, node_id: int) -> list[str]:
        return [
            sys.executable, "-m", "controller", "controller", "run",
            "--node-id", str(node_id), "--voters", self.voters,
            "--client-port", str(self.client_ports[node_id - 1]),
            "--admin-port", str(self.admin_ports[node_id - 1]),
            "--data-dir", str(self.node_data_dir(node_id)),
            "--fsync", "always" if self.fsync else "never",
            "--cluster-id", self.cluster_id, "--log-level", self.log_level,
            *self.extra_args,
        ]  # fmt: skip

    def start_node(self, node_id: int) -> None:
        """Start controller `node_id` (it must not be running); cancels a pending restart."""
        assert node_id not in self.procs or self.procs[node_id].poll() is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stderr: Any = None
        if self.log_to_files:
            old = self._logs.pop(node_id, None)
            if old is not None:
                old.close()
            log = open(self.data_dir / f"node-{node_id}.log", "ab")  # noqa: SIM115
            self._logs[node_id] = log
            stderr = log
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.exit_with_parent:
            env["KRAFT_EXIT_WITH_PARENT"] = str(os.getpid())
        self.procs[node_id] = subprocess.Popen(
            self.command(node_id),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            start_new_session=True,  # a Ctrl-C on the terminal reaches only the parent
        )
        self._stopped = False
        self._started_at[node_id] = time.monotonic()
        self._reported.discard(node_id)
        self._restart_at.pop(node_id, None)

    def start(self) -> None:
        for i in self.ids:
            self.start_node(i)

    def alive(self, node_id: int) -> bool:
        p = self.procs.get(node_id)
        return p is not None and p.poll() is None

    def pid(self, node_id: int) -> int | None:
        """PID of controller `node_id`'s current process if it is running, else None."""
        p = self.procs.get(node_id)
        return p.pid if p is not None and p.poll() is None else None

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Signal controller `node_id` and wait for it to exit (`supervise()` restarts it)."""
        p = self.procs[node_id]
        if p.poll() is None:
            p.send_signal(sig)
            p.wait(10)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every controller: SIGTERM, then SIGKILL whatever still runs after `timeout`.

        Cancels pending restarts; `supervise()` does nothing until the next start.
        """
        self._stopped = True
        self._restart_at.clear()
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def exited(self) -> dict[int, int]:
        return {i: p.returncode for i, p in self.procs.items() if p.poll() is not None}

    # ------------------------------------------------------------------ supervision

    def supervise(self) -> list[QuorumEvent]:
        """Non-blocking: report controllers that exited since the last call, restart due ones.

        A controller that exits (any cause: signal, crash, clean exit) is reported once as an
        "exited" event and, if `self.restart`, restarted `restart_delay` seconds later by a
        later call (or this one when the delay is 0), reported as a "restarted" event. A
        controller that keeps failing on its own (exit code > 0 within STABLE_RUN_S of its
        start) backs off: the delay doubles per consecutive failure, up to
        max(restart_delay, MAX_RESTART_DELAY_S). Deaths by signal always get `restart_delay`.
        After `stop()` (or before any start) it does nothing and returns [].
        """
        if self._stopped:
            return []
        events: list[QuorumEvent] = []
        now = time.monotonic()
        for i in self.ids:
            p = self.procs.get(i)
            if p is None or i in self._reported or p.poll() is None:
                continue
            self._reported.add(i)
            code = p.returncode
            lived = now - self._started_at.get(i, now)
            if code > 0 and lived < STABLE_RUN_S:
                self._quick_failures[i] = self._quick_failures.get(i, 0) + 1
            else:
                self._quick_failures[i] = 0
            head = f"controller {i} exited ({describe_exit(code)})"
            if not self.restart:
                message = f"{head}; restart disabled, leaving it down"
                events.append(QuorumEvent("exited", i, p.pid, message, returncode=code))
                continue
            backoff = 2 ** max(0, self._quick_failures[i] - 1)
            delay = min(self.restart_delay * backoff, max(self.restart_delay, MAX_RESTART_DELAY_S))
            self._restart_at[i] = now + delay
            message = f"{head}; restarting in {format_seconds(delay)} s"
            events.append(
                QuorumEvent("exited", i, p.pid, message, returncode=code, restart_in=delay)
            )
        for i, due in sorted(self._restart_at.items()):
            if due <= now:
                self.start_node(i)
                pid = self.procs[i].pid
                events.append(
                    QuorumEvent("restarted", i, pid, f"controller {i} restarted (pid {pid})")
                )
        return events

    def pending_restarts(self) -> dict[int, float]:
        """Controllers waiting for a restart -> seconds until `supervise()` restarts them."""
        now = time.monotonic()
        return {i: max(0.0, due - now) for i, due in sorted(self._restart_at.items())}

    # ------------------------------------------------------------------ status

    def status(self, timeout: float = 1.0) -> dict[str, Any]:
        live = [self.client_address(i) for i in self.ids if self.alive(i)]
        return trio.run(fetch_status, live, timeout)

    def wait_for_leader(self, timeout: float = 15.0, exclude: int | None = None) -> dict[str, Any]:
        """Poll until a live controller reports itself leader (not `exclude`)."""
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            for i in self.ids:
                p = self.procs.get(i)
                if p is not None and p.poll() is not None and i != exclude and p.returncode != -9:
                    raise QuorumError(f"controller {i} exited with code {p.returncode}")
            try:
                status = self.status()
                if status["role"] == "leader" and status["node_id"] != exclude:
                    return status
            except AdminError as exc:
                last_error = str(exc)
            time.sleep(0.05)
        raise QuorumError(f"no leader within {timeout} s ({last_error})")

    def wait_until_ready(
        self, timeout: float = 15.0, *, should_stop: Callable[[], bool] | None = None
    ) -> dict[str, Any]:
        """Poll until the quorum is ready; return the leader's status, as `fetch_status` does,
        with "controllers": the own status of every live controller (leader included).

        Ready means: a live controller is leader; its commit index has reached its last log
        index (so the no-op of its term is committed); and every live voter is caught up:
        lag 0 in the leader's view, and its own status answers with the leader's term and
        leader id and a commit index at least the leader's. Controllers whose process is not
        running (killed, stopped) are left out.

        Raises QuorumError at once if a controller process exited with a code > 0 (it failed
        on its own: bad configuration, storage error, port taken), QuorumInterrupted as soon
        as `should_stop()` returns True, QuorumNotReady (with the last leader status, if any)
        after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        problem = "no controller answered"
        last: dict[str, Any] | None = None
        while True:
            if should_stop is not None and should_stop():
                raise QuorumInterrupted("interrupted while waiting for the quorum")
            for i, code in self.exited().items():
                if code > 0:
                    raise QuorumError(f"controller {i} exited with code {code}")
            live = [i for i in self.ids if self.alive(i)]
            if not live:
                raise QuorumError("no controller is running")
            try:
                status = trio.run(_leader_and_members, [self.client_address(i) for i in live])
            except AdminError as exc:
                problem = str(exc)
            else:
                problem_or_none = _not_ready(status, live)
                if status["role"] == "leader":
                    last = status
                if problem_or_none is None:
                    return status
                problem = problem_or_none
            if time.monotonic() >= deadline:
                raise QuorumNotReady(f"quorum not ready within {timeout:g} s: {problem}", last)
            time.sleep(0.05)

    def __enter__(self) -> LocalQuorum:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _leader_and_members(addresses: Sequence[Address]) -> dict[str, Any]:
    status = await fetch_status(addresses, 1.0)
    status["controllers"] = (
        await fetch_all_statuses(status, 1.0) if status["role"] == "leader" else [status]
    )
    return status


def _not_ready(status: dict[str, Any], live: list[int]) -> str | None:
    """Why the quorum described by `status` is not ready yet, or None if it is."""
    if status["role"] != "leader":
        return (
            f"no leader yet (controller {status['node_id']} is {status['role']} "
            f"in term {status['term']})"
        )
    leader = status["node_id"]
    if status["commit_index"] < status["last_index"]:
        return (
            f"leader {leader} has committed {status['commit_index']} of "
            f"{status['last_index']} entries"
        )
    own = {c["node_id"]: c for c in status["controllers"]}
    for member in status["voters"]:
        i = member["id"]
        if i not in live:
            continue
        if member["lag"] != 0:
            return f"controller {i} lags by {member['lag']} entries"
        mine = own.get(i)
        if mine is None:
            return f"controller {i} does not answer"
        if mine["term"] != status["term"] or mine["leader_id"] != leader:
            return f"controller {i} does not follow leader {leader} yet"
        if mine["commit_index"] < status["commit_index"]:
            return f"controller {i} has not learned commit index {status['commit_index']} yet"
    return None
