"""Run a quorum of controller *processes* on this machine.

Used by `kraft quorum start`, by the real-process tests and by the benchmarks, so all three
exercise the same code path: `python -m controller controller run ...` per controller.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import trio

from controller.node.admin_client import AdminError, fetch_status
from controller.node.config import Address


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


class QuorumError(Exception):
    """A controller process failed to start, or the quorum did not become ready."""


class LocalQuorum:
    """N controller processes with fixed client and Raft ports under one data directory."""

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
    ) -> None:
        self.data_dir = data_dir
        self.ids = list(range(1, controllers + 1))
        self.client_ports = client_ports or free_ports(controllers)
        self.raft_ports = raft_ports or free_ports(controllers)
        assert len(self.client_ports) == len(self.raft_ports) == controllers
        self.fsync = fsync
        self.cluster_id = cluster_id
        self.log_level = log_level
        self.extra_args = extra_args or []
        self.log_to_files = log_to_files
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._logs: dict[int, IO[bytes]] = {}

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

    @property
    def addresses(self) -> list[Address]:
        return [self.client_address(i) for i in self.ids]

    def command(self, node_id: int) -> list[str]:
        return [
            sys.executable, "-m", "controller", "controller", "run",
            "--node-id", str(node_id), "--voters", self.voters,
            "--client-port", str(self.client_ports[node_id - 1]),
            "--data-dir", str(self.data_dir / f"node-{node_id}"),
            "--fsync", "always" if self.fsync else "never",
            "--cluster-id", self.cluster_id, "--log-level", self.log_level,
            *self.extra_args,
        ]  # fmt: skip

    def start_node(self, node_id: int) -> None:
        assert node_id not in self.procs or self.procs[node_id].poll() is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stderr: Any = None
        if self.log_to_files:
            log = open(self.data_dir / f"node-{node_id}.log", "ab")  # noqa: SIM115
            self._logs[node_id] = log
            stderr = log
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.procs[node_id] = subprocess.Popen(
            self.command(node_id),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            start_new_session=True,  # a Ctrl-C on the terminal reaches only the parent
        )

    def start(self) -> None:
        for i in self.ids:
            self.start_node(i)

    def alive(self, node_id: int) -> bool:
        p = self.procs.get(node_id)
        return p is not None and p.poll() is None

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        p = self.procs[node_id]
        if p.poll() is None:
            p.send_signal(sig)
            p.wait(10)

    def stop(self, timeout: float = 5.0) -> None:
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

    def __enter__(self) -> LocalQuorum:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
