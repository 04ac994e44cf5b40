"""ZooKeeper-compatibility fixtures.

The same tests run against our quorum (`KRAFT_ZK_TARGET=ours`, the default) or against a real
Apache ZooKeeper 3-node ensemble (`KRAFT_ZK_TARGET=real`), which is how they are validated.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

TARGET = os.environ.get("KRAFT_ZK_TARGET", "ours")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.timeout(120))


class Target:
    """What every test needs to know about the servers under test."""

    name: str
    connect_string: str
    servers: list[str]

    def kill_leader(self) -> None:
        raise NotImplementedError

    def restart_all_dead(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class RealTarget(Target):
    """A real Apache ZooKeeper ensemble (Debian package)."""

    name = "real"

    def __init__(self) -> None:
        from benchmarks.zk_ensemble import ZooKeeperEnsemble

        self.ensemble = ZooKeeperEnsemble(3)
        self.ensemble.start()
        self.connect_string = self.ensemble.connect_string
        self.servers = [f"127.0.0.1:{p}" for p in self.ensemble.client_ports]

    def kill_leader(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sid = self.ensemble.leader()
            if sid is not None:
                self.ensemble.kill(sid)
                return
            time.sleep(0.1)
        raise TimeoutError("no ZooKeeper leader to kill")

    def restart_all_dead(self) -> None:
        dead = [
            sid for sid in range(1, self.ensemble.size + 1) if sid not in self.ensemble.processes
        ]
        for sid in dead:
            self.ensemble.start_server(sid)
        if dead:
            self.ensemble.wait_ready(60)

    def stop(self) -> None:
        self.ensemble.stop()


class OursTarget(Target):
    """Our controller quorum: three processes on loopback."""

    name = "ours"

    def __init__(self, data_dir: Path) -> None:
        from controller.localquorum import LocalQuorum

        self.quorum = LocalQuorum(data_dir, log_level="INFO")
        self.quorum.start()
        try:
            self.quorum.wait_for_leader(timeout=30)
        except BaseException:
            self.quorum.stop()
            raise
        self.connect_string = self.quorum.connect_string
        self.servers = [f"127.0.0.1:{p}" for p in self.quorum.client_ports]

    def kill_leader(self) -> None:
        leader = self.quorum.wait_for_leader()["node_id"]
        self.quorum.kill(leader)

    def restart_all_dead(self) -> None:
        dead = [i for i in self.quorum.ids if not self.quorum.alive(i)]
        for i in dead:
            self.quorum.start_node(i)
        if dead:
            self.quorum.wait_for_leader(timeout=30)

    def stop(self) -> None:
        self.quorum.stop()


@pytest.fixture(scope="session")
def zk_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if TARGET == "real":
        from benchmarks.zk_ensemble import zookeeper_available

        if not zookeeper_available():
            pytest.skip("Apache ZooKeeper (Debian package) or java is not installed")
        target: Target = RealTarget()
    elif TARGET == "ours":
        target = OursTarget(tmp_path_factory.mktemp("zkquorum"))
    else:
        raise pytest.UsageError(f"KRAFT_ZK_TARGET must be 'ours' or 'real', not {TARGET!r}")
    try:
        yield target
    finally:
        target.stop()


def new_client(target: Target, timeout: float = 10.0, **kwargs: object) -> KazooClient:
    client = KazooClient(hosts=target.connect_string, timeout=timeout, **kwargs)  # type: ignore[arg-type]
    client.start(timeout=20)
    return client


@pytest.fixture
def make_client(zk_target: Target) -> Iterator[Callable[..., KazooClient]]:
    """Factory of extra connected clients, all stopped after the test."""
    clients: list[KazooClient] = []

    def make(timeout: float = 10.0, **kwargs: object) -> KazooClient:
        client = new_client(zk_target, timeout, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()
        client.close()


@pytest.fixture
def zk(make_client: Callable[..., KazooClient]) -> KazooClient:
    return make_client()


@pytest.fixture
def root(zk: KazooClient) -> str:
    """A fresh persistent node that this test owns."""
    path = f"/t-{uuid.uuid4().hex[:12]}"
    zk.create(path)
    return path


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
