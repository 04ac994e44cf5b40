"""ReadWriteLock and Semaphore (docs/recipes.md#readwritelock, #semaphore)."""

from __future__ import annotations

import pytest
import trio

from controller.client.recipes import LockTimeout, OwnershipState, ReadWriteLock, Semaphore
from tests.recipes.conftest import SHORT_SESSION_MS, ClientFactory
from tests.recipes.proxy import Proxy


async def test_readers_share_writers_exclude_and_a_waiting_writer_blocks_new_readers(
    clients: ClientFactory, root: str
) -> None:
    path = f"{root}/rw"
    rw = [ReadWriteLock(await clients(), path, f"c{n}") for n in range(4)]
    readers = [rw[0].read_lock(), rw[1].read_lock()]
    assert await readers[0].acquire() is not None
    assert await readers[1].acquire(timeout=2) is not None  # readers share
    with pytest.raises(LockTimeout):
        await rw[2].write_lock().acquire(timeout=0.3)  # a writer waits for readers
    events: list[str] = []
    async with trio.open_nursery() as nursery:
        writer = rw[2].write_lock()
        reader = rw[3].read_lock()

        async def write() -> None:
            async with writer:
                events.append("write")
                await trio.sleep(0.1)
                events.append("write done")

        async def read() -> None:
            async with reader:
                events.append("late read")

        nursery.start_soon(write)
        await trio.sleep(0.2)
        nursery.start_soon(read)  # queued behind the waiting writer
        await trio.sleep(0.2)
        assert events == []
        assert await rw[0].contenders() == ["c0", "c1", "c2", "c3"]
        for r in readers:  # both readers leave: the writer goes first, then the late reader
            await r.release()
    assert events == ["write", "write done", "late read"]


async def test_semaphore_admits_at_most_n(clients: ClientFactory, root: str) -> None:
    path = f"{root}/sem"
    inside = 0
    most = 0
    done = 0

    async def user(n: int) -> None:
        nonlocal inside, most, done
        sem = Semaphore(await clients(), path, f"u{n}", max_leases=2)
        for _ in range(2):
            async with sem as lease:
                assert lease.held
                inside += 1
                most = max(most, inside)
                await trio.sleep(0.05)
                inside -= 1
                done += 1

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in range(5):
                nursery.start_soon(user, n)
    assert most == 2 and done == 10
    zk = await clients()
    assert (await zk.get(path))[0] == b"2"  # kazoo's layout: the lease count as data
    with pytest.raises(ValueError, match="max leases"):
        await Semaphore(zk, path, max_leases=3).acquire()


async def test_semaphore_timeout_holders_and_lease_lost_on_expiry(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    path = f"{root}/sem"
    far = await clients([proxy.address], session_timeout_ms=SHORT_SESSION_MS)
    first = Semaphore(far, path, "far", max_leases=1)
    lease = await first.acquire()
    near = Semaphore(await clients(), path, "near", max_leases=1)
    assert await near.lease_holders() == ["far"]
    with pytest.raises(LockTimeout):
        await near.acquire(timeout=0.3)
    proxy.block()  # the holder goes silent: its session expires, the lease is freed
    with trio.fail_after(10):
        second = await near.acquire()
    assert second.held and await near.lease_holders() == ["near"]
    assert lease.state == OwnershipState.LOST
    await near.release()
