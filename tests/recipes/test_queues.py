"""Queue and LockingQueue (docs/recipes.md#queue, #lockingqueue)."""

from __future__ import annotations

import pytest
import trio

from controller.client.client import OPEN_ACL_UNSAFE
from controller.client.recipes import LockingQueue, LockLostError, OwnershipState, Queue
from controller.zk.constants import OpCode
from controller.zk.records import CreateRequest
from tests.recipes.conftest import SHORT_SESSION_MS, ClientFactory
from tests.recipes.proxy import Proxy


async def test_fifo_within_priority_and_blocking_take(clients: ClientFactory, root: str) -> None:
    queue = Queue(await clients(), f"{root}/q")
    assert await queue.get() is None
    for item in (b"a", b"b", b"c"):
        await queue.put(item)
    await queue.put(b"urgent", priority=1)
    await queue.put(b"later", priority=500)
    assert await queue.length() == 5
    assert [await queue.get() for _ in range(5)] == [b"urgent", b"a", b"b", b"c", b"later"]
    with pytest.raises(trio.TooSlowError):
        await queue.take(timeout=0.2)
    consumer = Queue(await clients(), f"{root}/q")
    async with trio.open_nursery() as nursery:
        got: list[bytes] = []

        async def consume() -> None:
            async for item in consumer:
                got.append(item)
                if len(got) == 2:
                    return

        nursery.start_soon(consume)
        await trio.sleep(0.1)
        await queue.put(b"x")
        await queue.put(b"y")
    assert got == [b"x", b"y"]


async def test_competing_consumers_get_each_item_once(clients: ClientFactory, root: str) -> None:
    producer = Queue(await clients(), f"{root}/q")
    for n in range(30):
        await producer.put(b"%d" % n)
    got: list[bytes] = []

    async def consume() -> None:
        queue = Queue(await clients(), f"{root}/q")
        await queue.zk.sync(f"{root}/q")  # see every item put through the producer's session
        while (item := await queue.get()) is not None:
            got.append(item)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(consume)
    assert sorted(got, key=int) == [b"%d" % n for n in range(30)]


async def test_locking_queue_consume_release_and_atomic_extra_ops(
    clients: ClientFactory, root: str
) -> None:
    zk = await clients()
    queue = LockingQueue(zk, f"{root}/lq")
    await queue.put_all([b"t1", b"t2"])
    await queue.put(b"t0", priority=10)
    other = LockingQueue(await clients(), f"{root}/lq")
    assert await queue.get() == b"t0"
    assert await queue.get() == b"t0"  # held until consumed or released
    assert await other.get(timeout=2) == b"t1"  # a locked item is skipped
    assert await other.release()
    assert await other.get(timeout=2) == b"t1"
    await zk.create(f"{root}/results")
    record = (OpCode.CREATE, CreateRequest(f"{root}/results/t0", b"ok", OPEN_ACL_UNSAFE, 0))
    assert await queue.consume([record])
    assert (await zk.get(f"{root}/results/t0"))[0] == b"ok"
    assert await queue.length() == 2
    async with queue.take(timeout=2) as item:
        assert item.value == b"t2"
    with pytest.raises(RuntimeError):
        async with other.take(timeout=2) as item:  # t1 again (other still holds it)
            assert item.value == b"t1"
            raise RuntimeError("worker failed")
    async with queue.take(timeout=2) as item:  # released on failure: still there
        assert item.value == b"t1"
    assert await queue.length() == 0
    assert await queue.get(timeout=0.1) is None


async def test_an_item_survives_its_worker_crash(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    path = f"{root}/lq"
    await LockingQueue(await clients(), path).put(b"precious")
    doomed = LockingQueue(await clients([proxy.address], SHORT_SESSION_MS), path)
    assert await doomed.get(timeout=5) == b"precious"
    rescuer = LockingQueue(await clients(), path)
    assert await rescuer.get(timeout=0.3) is None  # locked by the doomed worker
    proxy.block()  # the worker vanishes: its session expires, its lock goes
    assert await rescuer.get(timeout=10) == b"precious"
    assert doomed.item is not None and doomed.item.lock.state == OwnershipState.LOST
    with pytest.raises(LockLostError):
        await doomed.consume()
    assert await rescuer.consume()
    assert await rescuer.length() == 0
