"""One real 3-controller quorum (processes on loopback) shared by the broker tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from controller.localquorum import LocalQuorum
from tests.quorums import checked_quorum


@pytest.fixture(scope="package")
def quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalQuorum]:
    with checked_quorum(tmp_path_factory.mktemp("brokerquorum"), fsync=False) as q:
        yield q


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
