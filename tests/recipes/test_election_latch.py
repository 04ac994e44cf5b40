"""LeaderElection and LeaderLatch (docs/recipes.md#leaderelection, #leaderlatch)."""

from __future__ import annotations

import pytest
import trio

from controller.client.recipes import LeaderElection, LeaderLatch, LeadershipLost
from tests.recipes.conftest import ClientFactory
from tests.recipes.proxy import Proxy


async def test_one_leader_at_a_time_in_contention_order(clients: ClientFactory, root: str) -> None:
    path = f"{root}/election"
    leading: list[str] = []
    active = 0
    most = 0
    elections = [LeaderElection(await clients(), path, f"c{n}") for n in range(3)]

    async def contend(election: LeaderElection) -> str:
        async def lead() -> str:
            nonlocal active, most
            active += 1
            most = max(most, active)
            leading.append(election.identifier)
            assert election.is_leader
            assert await election.leader() == election.identifier
            await trio.sleep(0.1)
            active -= 1
            return election.identifier

        return await election.run(lead)

    async with trio.open_nursery() as nursery:
        for election in elections:
            nursery.start_soon(contend, election)
            await trio.sleep(0.05)
        contenders = await elections[0].contenders()
        assert contenders == sorted(contenders) and set(contenders) <= {"c0", "c1", "c2"}
    assert leading == ["c0", "c1", "c2"] and most == 1
    assert await elections[0].contenders() == []


async def test_leader_is_cancelled_when_its_connection_breaks(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    path = f"{root}/election"
    election = LeaderElection(await clients([proxy.address], 3000), path, "fragile")

    async def lead() -> None:
        proxy.cut()
        await trio.sleep_forever()

    with trio.fail_after(10), pytest.raises(LeadershipLost):
        await election.run(lead)
    # requeue: contend again after the loss, lead again once reconnected
    runs = 0

    async def lead_twice() -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            proxy.cut()
            await trio.sleep_forever()
        return "second term"

    with trio.fail_after(10):
        assert await election.run(lead_twice, requeue=True) == "second term"
    assert runs == 2


async def test_latch_flag_follows_leadership(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    path = f"{root}/latch"
    first_zk = await clients([proxy.address], 3000)
    async with LeaderLatch(first_zk, path, "a") as a:
        assert await a.await_leadership(timeout=5)
        async with (
            LeaderLatch(await clients(), path, "b") as b,
            LeaderLatch(await clients(), path, "c") as c,
        ):
            assert not await b.await_leadership(timeout=0.2)
            assert not c.has_leadership
            assert await b.participants() == ["a", "b", "c"]
            assert await c.leader() == "a"
            # a's connection breaks: its flag drops at once; same session after reconnect,
            # so it leads again and nobody else took over meanwhile
            proxy.cut()
            with trio.fail_after(5):
                await a.await_not_leader()
            assert await a.await_leadership(timeout=5)
            assert not b.has_leadership and not c.has_leadership
            children = await b.zk.get_children(path)
            assert all(name.startswith("_c_") and "-latch-" in name for name in children)
        assert await a.participants() == ["a"]
    async with LeaderLatch(await clients(), path, "d") as d:  # a left: d leads alone
        assert await d.await_leadership(timeout=5)
