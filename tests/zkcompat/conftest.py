"""A real 3-controller quorum (processes on loopback) for ZooKeeper-client tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from controller.localquorum import LocalQuorum
from tests.quorums import checked_quorum


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "zkcompat" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(180))


@pytest.fixture(scope="module")
def quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalQuorum]:
    with checked_quorum(tmp_path_factory.mktemp("zkquorum"), log_level="INFO") as q:
        yield q


@pytest.fixture
def hosts(quorum: LocalQuorum) -> str:
    return quorum.connect_string


@pytest.fixture
def zk(hosts: str) -> Iterator[KazooClient]:
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def root(zk: KazooClient) -> str:
    path = f"/t-{uuid.uuid4().hex[:10]}"
    zk.create(path)
    return path


def new_client(hosts: str, timeout: float = 10) -> KazooClient:
    client = KazooClient(hosts=hosts, timeout=timeout)
    client.start(timeout=15)
    return client


def data_dir(q: LocalQuorum) -> Path:
    return q.data_dir
