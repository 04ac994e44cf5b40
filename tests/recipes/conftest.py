"""One real 3-controller quorum (processes on loopback, OS-chosen ports) for all recipe
tests; tickTime 250 ms so sessions can be as short as 0.5 s (expiry tests stay fast)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio
from kazoo.client import KazooClient

from controller.client import ZkClient, open_client
from controller.client.errors import ConnectionLossError
from controller.localquorum import LocalQuorum
from controller.node.config import Address
from tests.quorums import checked_quorum
from tests.recipes.proxy import Proxy

TICK_MS = 250
SHORT_SESSION_MS = 1000

ClientFactory = Callable[..., Awaitable[ZkClient]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.timeout(60))


@pytest.fixture(scope="session")
def quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalQuorum]:
    data = tmp_path_factory.mktemp("recipes-quorum")
    with checked_quorum(data, extra_args=["--tick-time-ms", str(TICK_MS)]) as q:
        yield q


@pytest.fixture
def healed_quorum(quorum: LocalQuorum) -> Iterator[LocalQuorum]:
    """The quorum, with every controller a test killed started again afterwards."""
    yield quorum
    dead = [i for i in quorum.ids if not quorum.alive(i)]
    for i in dead:
        quorum.start_node(i)
    if dead:
        quorum.wait_until_ready(30)


@pytest.fixture
def root() -> str:
    return f"/recipes-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def clients(quorum: LocalQuorum) -> AsyncIterator[ClientFactory]:
    """`await clients()` opens another client (its own session), closed after the test;
    `await clients(hosts, session_timeout_ms=...)` for a particular server list. (Each client
    lives in a task of this fixture's nursery: pytest-trio runs fixtures in their own task.)"""
    stops: list[trio.Event] = []
    async with trio.open_nursery() as nursery:

        async def keep(
            hosts: str | list[Address],
            session_timeout_ms: int,
            task_status: trio.TaskStatus[ZkClient] = trio.TASK_STATUS_IGNORED,
        ) -> None:
            stop = trio.Event()
            stops.append(stop)
            try:
                async with open_client(hosts, session_timeout_ms) as zk:
                    task_status.started(zk)
                    await stop.wait()
            except* ConnectionLossError:
                pass  # the closeSession's reply was lost (a test broke the connection)

        async def make(
            hosts: str | list[Address] | None = None, session_timeout_ms: int = 5000
        ) -> ZkClient:
            zk: ZkClient = await nursery.start(
                keep, hosts or quorum.connect_string, session_timeout_ms
            )
            return zk

        yield make
        for stop in stops:
            stop.set()


@pytest.fixture
async def zk(clients: ClientFactory) -> ZkClient:
    return await clients()


@pytest.fixture
async def proxy(quorum: LocalQuorum) -> AsyncIterator[Proxy]:
    """A proxy to the quorum's first controller; connect with `clients([proxy.address])`."""
    p = Proxy(quorum.client_address(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        yield p
        nursery.cancel_scope.cancel()


@pytest.fixture
def kazoo(quorum: LocalQuorum) -> Iterator[Callable[[], KazooClient]]:
    """Factory of started kazoo clients (blocking: call them through trio.to_thread)."""
    made: list[KazooClient] = []

    def make() -> KazooClient:
        client = KazooClient(hosts=quorum.connect_string, timeout=5)
        client.start(timeout=15)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()
        client.close()
