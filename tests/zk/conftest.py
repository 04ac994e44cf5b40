"""ZooKeeper-compatibility fixtures.

The same tests run against our quorum (`KRAFT_ZK_TARGET=ours`, the default) or against a real
Apache ZooKeeper 3-node ensemble (`KRAFT_ZK_TARGET=real`), which is how they are validated.

Tests that only make sense against our servers (our trio client, the `kraft` CLI, our process
internals, answers where we knowingly differ from ZooKeeper) carry
`@pytest.mark.ours_only("why")`: under `KRAFT_ZK_TARGET=real` they are skipped with that reason.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kazoo.client import KazooClient

from tests.zk.raw import OPEN, RawClient, connect

if TYPE_CHECKING:
    from controller.localquorum import LocalQuorum

TARGET = os.environ.get("KRAFT_ZK_TARGET", "ours")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ours_only(reason): a tests/zk test that runs only against our quorum (skipped, with the "
        "reason, under KRAFT_ZK_TARGET=real)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if not str(item.fspath).startswith(here):
            continue
        item.add_marker(pytest.mark.timeout(120))
        marker = item.get_closest_marker("ours_only")
        if marker is not None and TARGET != "ours":
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"ours only: {reason}"))


class Target:
    """What every test needs to know about the servers under test."""

    name: str
    connect_string: str
    servers: list[str]

    def kill_leader(self) -> str:
        """SIGKILL the leader; returns its client address."""
        raise NotImplementedError

    def restart_all_dead(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class RealTarget(Target):
    """A real Apache ZooKeeper ensemble (Debian package)."""

    name = "real"

    def __init__(self, size: int = 3, extra_config: tuple[str, ...] = ()) -> None:
        from benchmarks.zk_ensemble import ZooKeeperEnsemble

        class Ensemble(ZooKeeperEnsemble):
            def _config(self, server_id: int) -> Path:
                path = super()._config(server_id)
                path.write_text(path.read_text() + "".join(f"{line}\n" for line in extra_config))
                return path

        self.ensemble = Ensemble(size)
        self.ensemble.start()
        self.connect_string = self.ensemble.connect_string
        self.servers = [f"127.0.0.1:{p}" for p in self.ensemble.client_ports]

    def kill_leader(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sid = self.ensemble.leader()
            if sid is not None:
                self.ensemble.kill(sid)
                return self.servers[sid - 1]
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

    def __init__(self, data_dir: Path, controllers: int = 3, extra_args: list[str] | None = None):
        from controller.localquorum import LocalQuorum

        self.quorum = LocalQuorum(
            data_dir, controllers=controllers, log_level="INFO", extra_args=extra_args
        )
        self.quorum.start()
        try:
            self.quorum.wait_for_leader(timeout=30)
        except BaseException:
            self.quorum.stop()
            raise
        self.connect_string = self.quorum.connect_string
        self.servers = [f"127.0.0.1:{p}" for p in self.quorum.client_ports]

    def kill_leader(self) -> str:
        leader = self.quorum.wait_for_leader()["node_id"]
        self.quorum.kill(leader)
        return self.servers[leader - 1]

    def restart_all_dead(self) -> None:
        dead = [i for i in self.quorum.ids if not self.quorum.alive(i)]
        for i in dead:
            self.quorum.start_node(i)
        if dead:
            self.quorum.wait_for_leader(timeout=30)

    def stop(self) -> None:
        self.quorum.stop()
        # Our own check on top of ZooKeeper's behaviour: no controller logged a traceback.
        for i in self.quorum.ids:
            log = (self.quorum.data_dir / f"node-{i}.log").read_text()
            assert "Traceback" not in log, f"controller {i} logged a traceback:\n{log[-4000:]}"


def start_target(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    extended: bool = False,
    single: bool = False,
    real_config: tuple[str, ...] = (),
    ours_args: tuple[str, ...] = (),
) -> Target:
    """The target of KRAFT_ZK_TARGET: three servers, or one (`single`); `extended` enables
    extended (TTL) node types (`extendedTypesEnabled=true` on ZooKeeper,
    `--extended-types-enabled` here); `real_config` are extra zoo.cfg lines for ZooKeeper,
    `ours_args` the matching command-line options of our controllers."""
    if extended:
        single = True
        real_config = ("extendedTypesEnabled=true", *real_config)
        ours_args = ("--extended-types-enabled", *ours_args)
    if TARGET == "real":
        from benchmarks.zk_ensemble import zookeeper_available

        if not zookeeper_available():
            pytest.skip("Apache ZooKeeper (Debian package) or java is not installed")
        return RealTarget(1 if single else 3, real_config)
    if TARGET == "ours":
        data_dir = tmp_path_factory.mktemp("zkquorum")
        return OursTarget(data_dir, 1 if single else 3, list(ours_args))
    raise pytest.UsageError(f"KRAFT_ZK_TARGET must be 'ours' or 'real', not {TARGET!r}")


@pytest.fixture(scope="session")
def zk_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target = start_target(tmp_path_factory)
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture(scope="module")
def extended_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A separate one-server target with TTL nodes enabled."""
    target = start_target(tmp_path_factory, extended=True)
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture
def quorum(zk_target: Target) -> LocalQuorum:
    """Our quorum behind `zk_target`, for `ours_only` tests about our processes."""
    assert isinstance(zk_target, OursTarget), "an ours_only test ran against another target"
    return zk_target.quorum


@pytest.fixture
def make_raw(zk_target: Target) -> Iterator[Callable[..., RawClient]]:
    """Factory of raw wire clients (first server unless told), all closed after the test."""
    clients: list[RawClient] = []

    def make(server: str | None = None) -> RawClient:
        client = connect(server or zk_target.servers[0])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def raw(make_raw: Callable[..., RawClient]) -> RawClient:
    return make_raw()


@pytest.fixture
def base(raw: RawClient) -> str:
    """A fresh persistent node created through `raw` (so `raw` reads it at once)."""
    from controller.zk.records import CreateRequest

    path = f"/r-{uuid.uuid4().hex[:12]}"
    assert raw.call(1, CreateRequest(path, b"", OPEN, 0)).err == 0
    return path


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
