"""GroupMembership, Barrier, DoubleBarrier (docs/recipes.md)."""

from __future__ import annotations

import itertools

import trio

from controller.client.recipes import Barrier, DoubleBarrier, GroupMembership, OwnershipState
from tests.recipes.conftest import SHORT_SESSION_MS, ClientFactory
from tests.recipes.proxy import Proxy


async def test_membership_is_watched_live_and_ends_with_the_session(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    path = f"{root}/group"
    observer = GroupMembership(await clients(), path)
    seen: list[list[bytes]] = []
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            async for members in observer.watch():
                seen.append(members)

        nursery.start_soon(watch)

        async def wait_for(members: set[bytes]) -> None:
            with trio.fail_after(10):
                while not seen or set(seen[-1]) != members:
                    await trio.sleep(0.01)

        await wait_for(set())
        fragile_zk = await clients([proxy.address], SHORT_SESSION_MS)
        fragile = GroupMembership(fragile_zk, path, "fragile")
        async with GroupMembership(await clients(), path, "steady"):
            membership = await fragile.join()
            await wait_for({b"steady", b"fragile"})
            assert sorted(await observer.members()) == [b"fragile", b"steady"]
            proxy.block()  # fragile's session expires: it drops out
            await wait_for({b"steady"})
            assert membership.state == OwnershipState.LOST
        await wait_for(set())  # steady left cleanly
        nursery.cancel_scope.cancel()
    assert all(a != b for a, b in itertools.pairwise(seen))  # one list per change


async def test_barrier_blocks_until_removed(clients: ClientFactory, root: str) -> None:
    barrier = Barrier(await clients(), f"{root}/barrier")
    assert await barrier.wait(timeout=0.1)  # no barrier: pass at once
    assert await barrier.create()
    assert not await barrier.create()
    assert not await barrier.wait(timeout=0.3)
    passed = trio.Event()
    waiter = Barrier(await clients(), f"{root}/barrier")
    async with trio.open_nursery() as nursery:

        async def wait() -> None:
            assert await waiter.wait(timeout=10)
            passed.set()

        nursery.start_soon(wait)
        await trio.sleep(0.2)
        assert not passed.is_set()
        assert await barrier.remove()
    assert passed.is_set()
    assert not await barrier.remove()


async def test_double_barrier_enters_and_leaves_together_twice(
    clients: ClientFactory, root: str
) -> None:
    path = f"{root}/double"
    log: list[tuple[str, int]] = []

    async def participant(n: int) -> None:
        zk = await clients()
        for round_ in range(2):
            await trio.sleep(0.05 * n)  # arrive at different times
            async with DoubleBarrier(zk, path, 3, identifier=f"p{n}"):
                log.append(("in", n))
                await trio.sleep(0.05 * (3 - n))  # leave at different times
                log.append(("out", n))
            log.append(("left", round_))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(participant, n)
    for round_ in range(2):
        part = log[round_ * 9 : round_ * 9 + 9]
        kinds = [k for k, _ in part]
        # nobody is inside before all three entered; nobody left before all three were out
        assert kinds[:3] == ["in", "in", "in"], log
        assert kinds[-3:] == ["left", "left", "left"], log
