"""TreeCache (docs/recipes.md#treecache)."""

from __future__ import annotations

import trio

from controller.client.recipes import TreeCache, TreeEventType
from tests.recipes.conftest import ClientFactory
from tests.recipes.proxy import Proxy


async def test_mirror_follows_creates_changes_and_deletes(
    clients: ClientFactory, root: str
) -> None:
    writer = await clients()
    await writer.create(f"{root}/app/a", b"1", makepath=True)
    await writer.create(f"{root}/app/a/x", b"2")
    async with TreeCache(await clients(), f"{root}/app") as cache:
        assert cache.snapshot() == {
            f"{root}/app": b"",
            f"{root}/app/a": b"1",
            f"{root}/app/a/x": b"2",
        }
        assert cache.children(f"{root}/app") == ["a"]
        async with cache.subscribe() as events:
            await writer.create(f"{root}/app/b", b"3")
            await writer.set(f"{root}/app/a", b"one")
            await writer.create(f"{root}/app/b/deep", b"4")
            await writer.delete(f"{root}/app/a", recursive=True)
            await writer.create(f"{root}/outside", b"no")
            await cache.wait_for(
                lambda c: (
                    c.snapshot()
                    == {f"{root}/app": b"", f"{root}/app/b": b"3", f"{root}/app/b/deep": b"4"}
                ),
                timeout=5,
            )
            got = []
            with trio.move_on_after(0.2):
                async for event in events:
                    got.append((event.type, event.path))
        assert (TreeEventType.NODE_ADDED, f"{root}/app/b") in got
        assert (TreeEventType.NODE_UPDATED, f"{root}/app/a") in got
        assert (TreeEventType.NODE_REMOVED, f"{root}/app/a/x") in got
        assert (TreeEventType.NODE_REMOVED, f"{root}/app/a") in got
        assert all(path is None or path.startswith(f"{root}/app") for _, path in got)
        node = cache.get(f"{root}/app/b/deep")
        assert node is not None and node.stat.version == 0
        await writer.delete(f"{root}/app", recursive=True)
        await cache.wait_for(lambda c: not c.nodes, timeout=5)
        await writer.create(f"{root}/app", b"back")  # the watch outlives the root itself
        await cache.wait_for(lambda c: c.snapshot() == {f"{root}/app": b"back"}, timeout=5)


async def test_resync_after_reconnect_catches_missed_changes(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    writer = await clients()
    await writer.create(f"{root}/t/keep", b"k", makepath=True)
    await writer.create(f"{root}/t/gone", b"g")
    async with TreeCache(await clients([proxy.address], 3000), f"{root}/t") as cache:
        async with cache.subscribe() as events:
            proxy.block()
            await writer.set(f"{root}/t/keep", b"changed")
            await writer.delete(f"{root}/t/gone")
            await writer.create(f"{root}/t/new", b"n")
            await trio.sleep(0.3)
            assert cache.snapshot()[f"{root}/t/keep"] == b"k"  # stale while away
            proxy.unblock()
            await cache.wait_for(
                lambda c: (
                    c.snapshot()
                    == {f"{root}/t": b"", f"{root}/t/keep": b"changed", f"{root}/t/new": b"n"}
                ),
                timeout=10,
            )
            kinds = []
            with trio.fail_after(5):
                async for event in events:
                    kinds.append(event.type)
                    if event.type == TreeEventType.CONNECTION_RECONNECTED:
                        break
        assert kinds[0] == TreeEventType.CONNECTION_SUSPENDED
        assert sorted(kinds[1:-1]) == sorted(
            [TreeEventType.NODE_UPDATED, TreeEventType.NODE_REMOVED, TreeEventType.NODE_ADDED]
        )
