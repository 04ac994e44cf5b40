"""The two systems the ZooKeeper benchmarks compare, behind one small interface.

`ours`: a 3-controller `LocalQuorum` (fsync on); `zookeeper`: a 3-node Apache ZooKeeper 3.8
ensemble from Debian's package (`zk_ensemble.py`, forceSync=yes). Both answer ZooKeeper's
four-letter words, so the leader and the followers are found the same way on both (`srvr`).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import trio

from benchmarks.zk_ensemble import ZooKeeperEnsemble, four_letter
from benchmarks.zk_load import parse_servers
from controller.localquorum import LocalQuorum


class System(Protocol):
    """What the benchmark needs from either system."""

    name: str
    connect_string: str

    def leader(self) -> int: ...
    def kill(self, server: int) -> None: ...
    def restart(self, server: int) -> None: ...
    def address(self, server: int) -> tuple[str, int]: ...
    def servers(self) -> list[int]: ...
    def pids(self) -> list[int]: ...


def mode(system: System, server: int) -> str | None:
    """`leader`, `follower` (or None) from the server's own `srvr` four-letter word."""
    _, port = system.address(server)
    for line in four_letter(port, "srvr").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def roles(system: System) -> tuple[int, int]:
    """(leader, a follower), as the servers themselves report them via `srvr`; the leader
    must also be the one the system's own leader query names."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        leader = system.leader()
        modes = {s: mode(system, s) for s in system.servers()}
        followers = [s for s, m in modes.items() if m == "follower"]
        if modes.get(leader) == "leader" and followers:
            return leader, followers[0]
        time.sleep(0.1)
    raise RuntimeError(f"{system.name}: no leader/follower pair via srvr")


class Ours:
    name = "ours"

    def __init__(self, quorum: LocalQuorum) -> None:
        self.q = quorum
        self.connect_string = quorum.connect_string

    def leader(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses = [self._status(i) for i in self.q.ids if self.q.alive(i)]
            leaders = [s for s in statuses if s and s["role"] == "leader"]
            if leaders:
                best = max(leaders, key=lambda s: s["term"])
                # Only a leader every live member follows (no stale one about to step down).
                if all(s and s["leader_id"] == best["node_id"] for s in statuses):
                    node: int = best["node_id"]
                    return node
            time.sleep(0.05)
        raise RuntimeError("no stable leader")

    def _status(self, node: int) -> dict[str, Any] | None:
        from controller.node.admin_client import AdminError, query_status

        try:
            status: dict[str, Any] = trio.run(query_status, self.q.client_address(node), 1.0)
        except AdminError:
            return None
        return status

    def kill(self, server: int) -> None:
        self.q.kill(server)

    def restart(self, server: int) -> None:
        self.q.start_node(server)
        # The next trial needs all three members: wait until this one has caught up.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            mine = self._status(server)
            leader = self._status(self.leader())
            if mine and leader and mine["applied_index"] >= leader["commit_index"]:
                return
            time.sleep(0.1)

    def address(self, server: int) -> tuple[str, int]:
        a = self.q.client_address(server)
        return a.host, a.port

    def servers(self) -> list[int]:
        return list(self.q.ids)

    def pids(self) -> list[int]:
        return [pid for i in self.q.ids if (pid := self.q.pid(i)) is not None]


class Theirs:
    name = "zookeeper"

    def __init__(self, ensemble: ZooKeeperEnsemble) -> None:
        self.e = ensemble
        self.connect_string = ensemble.connect_string

    def leader(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            leader = self.e.leader()
            if leader is not None:
                return leader
            time.sleep(0.05)
        raise RuntimeError("ZooKeeper has no leader")

    def kill(self, server: int) -> None:
        self.e.kill(server)

    def restart(self, server: int) -> None:
        self.e.start_server(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.e.mode(server) not in ("follower", "leader"):
            time.sleep(0.1)
        time.sleep(1.0)  # let it finish syncing with the leader

    def address(self, server: int) -> tuple[str, int]:
        host, port = parse_servers(self.connect_string)[server - 1]
        return host, port

    def servers(self) -> list[int]:
        return list(range(1, len(parse_servers(self.connect_string)) + 1))

    def pids(self) -> list[int]:
        return [p.pid for p in self.e.processes.values() if p.poll() is None]


@contextlib.contextmanager
def start(name: str) -> Iterator[System]:
    if name == "ours":
        with tempfile.TemporaryDirectory(prefix="kraft-zkbench-") as tmp:
            q = LocalQuorum(Path(tmp), fsync=True, log_level="INFO")
            with q:
                q.wait_for_leader()
                try:
                    yield Ours(q)
                except Exception:
                    for i in q.ids:  # post-mortem: what the controllers said
                        lines = (Path(tmp) / f"node-{i}.log").read_text().splitlines()
                        print(f"--- controller {i} (last lines)")
                        print("\n".join(line for line in lines[-15:]))
                    raise
    else:
        e = ZooKeeperEnsemble(3)
        try:
            e.start()
            e.wait_ready()
            yield Theirs(e)
        finally:
            e.stop()
