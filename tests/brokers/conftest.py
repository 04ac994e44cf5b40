"""One real 3-controller quorum (processes on loopback) shared by the broker tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from controller.localquorum import LocalQuorum


@pytest.fixture(scope="package")
def quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalQuorum]:
    data = tmp_path_factory.mktemp("brokerquorum")
    q = LocalQuorum(data, fsync=False)
    with q:
        q.wait_for_leader()
        yield q
    for i in q.ids:
        log = (data / f"node-{i}.log").read_text()
        assert "Traceback" not in log, f"controller {i} logged a traceback:\n{log[-4000:]}"


@pytest.fixture
def bootstrap(quorum: LocalQuorum) -> str:
    return quorum.connect_string


@pytest.fixture
def zk(bootstrap: str) -> Iterator[KazooClient]:
    client = KazooClient(hosts=bootstrap, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()
