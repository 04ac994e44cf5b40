"""Start and stop a real Apache ZooKeeper ensemble (Debian's `zookeeper` package) on loopback.

Used by the side-by-side benchmarks so that our figures are always printed next to
ZooKeeper's, measured in the same run on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from benchmarks.ports import free_ports

CLASSPATH = ":".join(
    [
        "/usr/share/java/zookeeper.jar",
        "/usr/share/java/zookeeper-jute.jar",
        "/usr/share/java/slf4j-api.jar",
        "/usr/share/java/slf4j-log4j12.jar",
        "/usr/share/java/log4j-1.2.jar",
    ]
)


def zookeeper_available() -> bool:
    """True when Debian's zookeeper package and a JVM are installed."""
    return shutil.which("java") is not None and os.path.exists("/usr/share/java/zookeeper.jar")


def four_letter(port: int, word: str, timeout: float = 1.0) -> str:
    """Send a four-letter word and return the reply ('' when the server does not answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


class ZooKeeperEnsemble:
    """N ZooKeeper servers as plain processes, each with its own data dir and client port."""

    def __init__(self, size: int = 3, *, tick_ms: int = 2000, force_sync: bool = True) -> None:
        assert size >= 1
        self.size = size
        self.tick_ms = tick_ms
        self.force_sync = force_sync
        ports = free_ports(3 * size)
        self.client_ports = ports[:size]
        self.peer_ports = ports[size : 2 * size]
        self.election_ports = ports[2 * size :]
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="zk-ensemble-"))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def connect_string(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.client_ports)

    def _config(self, server_id: int) -> pathlib.Path:
        data_dir = self.root / f"zk{server_id}"
        data_dir.mkdir(exist_ok=True)
        (data_dir / "myid").write_text(f"{server_id}\n")
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=10",
            "syncLimit=5",
            f"dataDir={data_dir}",
            f"clientPort={self.client_ports[server_id - 1]}",
            "clientPortAddress=127.0.0.1",
            "maxClientCnxns=0",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
            f"forceSync={'yes' if self.force_sync else 'no'}",
        ]
        if self.size > 1:
            for sid in range(1, self.size + 1):
                peer = self.peer_ports[sid - 1]
                election = self.election_ports[sid - 1]
                lines.append(f"server.{sid}=127.0.0.1:{peer}:{election}")
        path = self.root / f"zoo{server_id}.cfg"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start_server(self, server_id: int) -> None:
        config = self._config(server_id)
        log = open(self.root / f"zk{server_id}.log", "ab")  # noqa: SIM115 - owned by the process
        env = dict(os.environ, ZOO_LOG4J_PROP="WARN,CONSOLE")
        self.processes[server_id] = subprocess.Popen(
            [
                "java",
                "-Xmx512m",
                "-Dzookeeper.log.threshold=WARN",
                "-cp",
                CLASSPATH,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def start(self, timeout: float = 60.0) -> None:
        for sid in range(1, self.size + 1):
            self.start_server(sid)
        self.wait_ready(timeout)

    def mode(self, server_id: int) -> str | None:
        reply = four_letter(self.client_ports[server_id - 1], "srvr")
        for line in reply.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            modes = [self.mode(sid) for sid in self.processes]
            if all(modes) and ("leader" in modes or "standalone" in modes):
                return
            time.sleep(0.2)
        raise TimeoutError(f"ZooKeeper ensemble not ready after {timeout}s (logs in {self.root})")

    def leader(self) -> int | None:
        for sid in self.processes:
            if self.mode(sid) in ("leader", "standalone"):
                return sid
        return None

    def kill(self, server_id: int) -> None:
        process = self.processes.pop(server_id)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for sid in list(self.processes):
            self.kill(sid)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def zookeeper_ensemble(size: int = 3, **kwargs: object) -> Iterator[ZooKeeperEnsemble]:
    """A running ensemble, always stopped on exit."""
    ensemble = ZooKeeperEnsemble(size, **kwargs)  # type: ignore[arg-type]
    try:
        ensemble.start()
        yield ensemble
    finally:
        ensemble.stop()
