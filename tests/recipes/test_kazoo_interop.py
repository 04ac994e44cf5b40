"""Mixed fleets: kazoo's recipes and ours on the same paths exclude each other and agree on
who holds or leads (docs/recipes.md#interoperability)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio
from kazoo.client import KazooClient
from kazoo.recipe.counter import Counter as KazooCounter

from controller.client.recipes import (
    Barrier,
    Counter,
    DoubleBarrier,
    GroupMembership,
    LeaderElection,
    Lock,
    LockingQueue,
    LockTimeout,
    ReadWriteLock,
    Semaphore,
)
from tests.recipes.conftest import ClientFactory

Kazoo = Callable[[], KazooClient]


async def run(fn: Callable[..., Any], *args: object) -> Any:
    return await trio.to_thread.run_sync(fn, *args)


async def test_lock_excludes_both_ways_and_contenders_agree(
    clients: ClientFactory, kazoo: Kazoo, root: str
) -> None:
    path = f"{root}/lock"
    kz = await trio.to_thread.run_sync(kazoo)
    theirs = kz.Lock(path, "kazoo")
    assert await run(theirs.acquire, True, 5)
    ours = Lock(await clients(), path, "ours")
    with pytest.raises(LockTimeout):
        await ours.acquire(timeout=0.3)
    async with trio.open_nursery() as nursery:
        got = trio.Event()

        async def wait() -> None:
            await ours.acquire()
            got.set()

        nursery.start_soon(wait)
        await trio.sleep(0.2)
        assert await ours.contenders() == ["kazoo", "ours"]
        await run(kz.sync, path)  # kazoo's session reads the latest too
        assert await run(theirs.contenders) == ["kazoo", "ours"]
        assert not got.is_set()
        await run(theirs.release)
        with trio.fail_after(5):
            await got.wait()
    second = kz.Lock(path, "kazoo-2")
    assert not await run(second.acquire, False)  # ours holds it: kazoo cannot
    assert await run(second.contenders) == ["ours"]
    await ours.release()
    assert await run(second.acquire, True, 5)
    await run(second.release)


async def test_read_write_locks_mix(clients: ClientFactory, kazoo: Kazoo, root: str) -> None:
    path = f"{root}/rw"
    kz = await trio.to_thread.run_sync(kazoo)
    kazoo_reader = kz.ReadLock(path, "kr")
    assert await run(kazoo_reader.acquire, True, 5)
    rw = ReadWriteLock(await clients(), path, "ours")
    reader = rw.read_lock()
    assert await reader.acquire(timeout=2) is not None  # readers share across libraries
    with pytest.raises(LockTimeout):
        await rw.write_lock().acquire(timeout=0.3)
    assert not await run(kz.WriteLock(path, "kw").acquire, False)
    await reader.release()
    await run(kazoo_reader.release)


async def test_election_agrees_on_the_leader(
    clients: ClientFactory, kazoo: Kazoo, root: str
) -> None:
    path = f"{root}/election"
    kz = await trio.to_thread.run_sync(kazoo)
    kazoo_election = kz.Election(path, "kazoo")
    leading = threading.Event()
    stop = threading.Event()

    def kazoo_lead() -> None:
        leading.set()
        stop.wait(20)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, kazoo_election.run, kazoo_lead)
        await run(leading.wait, 10)
        ours = LeaderElection(await clients(), path, "ours")
        led = trio.Event()

        async def lead() -> None:
            led.set()
            assert await ours.leader() == "ours"

        nursery.start_soon(ours.run, lead)
        await trio.sleep(0.3)
        assert not led.is_set()
        assert await ours.contenders() == ["kazoo", "ours"]
        await run(kz.sync, path)
        assert await run(kazoo_election.contenders) == ["kazoo", "ours"]
        stop.set()
        with trio.fail_after(5):
            await led.wait()


async def test_semaphore_shares_leases(clients: ClientFactory, kazoo: Kazoo, root: str) -> None:
    path = f"{root}/sem"
    kz = await trio.to_thread.run_sync(kazoo)
    kazoo_sem = kz.Semaphore(path, "kazoo", max_leases=2)
    assert await run(kazoo_sem.acquire, True, 5)
    ours = Semaphore(await clients(), path, "ours", max_leases=2)
    await ours.acquire(timeout=5)
    assert sorted(await ours.lease_holders()) == ["kazoo", "ours"]
    await run(kz.sync, path)
    assert sorted(await run(kazoo_sem.lease_holders)) == ["kazoo", "ours"]
    third = Semaphore(await clients(), path, "third", max_leases=2)
    with pytest.raises(LockTimeout):
        await third.acquire(timeout=0.3)
    assert not await run(kz.Semaphore(path, "k2", max_leases=2).acquire, False)
    await run(kazoo_sem.release)
    await third.acquire(timeout=5)
    await third.release()
    await ours.release()


async def test_barriers_party_queue_and_counter_mix(
    clients: ClientFactory, kazoo: Kazoo, root: str
) -> None:
    kz = await trio.to_thread.run_sync(kazoo)
    zk = await clients()
    # Barrier: kazoo raises it, ours waits, kazoo lowers it.
    kazoo_barrier = kz.Barrier(f"{root}/barrier")
    await run(kazoo_barrier.create)
    assert not await Barrier(zk, f"{root}/barrier").wait(timeout=0.2)
    await run(kazoo_barrier.remove)
    assert await Barrier(zk, f"{root}/barrier").wait(timeout=2)
    # DoubleBarrier: two kazoo participants and one of ours make three.
    async with trio.open_nursery() as nursery:
        entered: list[str] = []

        def kazoo_side(name: str) -> None:
            barrier = kazoo().DoubleBarrier(f"{root}/double", 3, name)
            barrier.enter()
            entered.append(name)
            barrier.leave()

        for name in ("k1", "k2"):
            nursery.start_soon(run, kazoo_side, name)
        await trio.sleep(0.3)
        assert entered == []
        async with DoubleBarrier(zk, f"{root}/double", 3, "ours"):
            with trio.fail_after(10):
                while len(entered) < 2:
                    await trio.sleep(0.01)
    # Party: kazoo's members and ours are one group.
    party = kz.Party(f"{root}/party", "kazoo-member")
    await run(party.join)
    async with GroupMembership(zk, f"{root}/party", "our-member") as _:
        assert sorted(await GroupMembership(zk, f"{root}/party").members()) == [
            b"kazoo-member",
            b"our-member",
        ]
        await run(kz.sync, f"{root}/party")
        assert sorted(await run(list, party)) == ["kazoo-member", "our-member"]
    # LockingQueue: kazoo puts, ours takes and consumes; ours puts, kazoo takes.
    kazoo_queue = kz.LockingQueue(f"{root}/lq")
    await run(kazoo_queue.put, b"from kazoo")
    ours = LockingQueue(zk, f"{root}/lq")
    async with ours.take(timeout=5) as item:
        assert item.value == b"from kazoo"
    await ours.put(b"from ours", priority=5)
    assert await run(kazoo_queue.get, 5) == b"from ours"
    assert await run(kazoo_queue.consume)
    assert await ours.length() == 0
    # Counter: both count on the same node.
    await Counter(zk, f"{root}/count").add(5)
    kazoo_counter = KazooCounter(kz, f"{root}/count")
    await run(kazoo_counter.__add__, 2)
    await zk.sync(f"{root}/count")  # kazoo's write came through another session
    assert await Counter(zk, f"{root}/count").get() == 7
