"""Counter and ConfigWatch (docs/recipes.md#counter, #configwatch)."""

from __future__ import annotations

import struct

import attrs
import pytest
import trio

from controller.client.recipes import ConfigWatch, Counter
from tests.recipes.conftest import ClientFactory
from tests.recipes.proxy import Proxy


async def test_concurrent_adds_are_never_lost(clients: ClientFactory, root: str) -> None:
    path = f"{root}/count"

    async def adder() -> None:
        counter = Counter(await clients(), path)
        for _ in range(10):
            await counter.add(1)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(adder)
    counter = Counter(await clients(), path)
    await counter.zk.sync(path)  # the adds came through other sessions
    assert await counter.get() == 40
    zk = counter.zk
    assert (await zk.get(path))[0] == b"40"  # kazoo's layout: repr as ASCII
    assert await counter.subtract(5) == (40, 35)
    _value, version = await counter.get_versioned()
    assert await counter.try_set(100, version)
    assert not await counter.try_set(7, version)  # stale version: refused
    assert await counter.get() == 100
    with pytest.raises(TypeError):
        await counter.add(1.5)  # type: ignore[arg-type]


async def test_float_and_curator_layouts(clients: ClientFactory, root: str) -> None:
    zk = await clients()
    floats = Counter(zk, f"{root}/f", 1.5)
    assert await floats.add(2.0) == (1.5, 3.5)
    assert (await zk.get(f"{root}/f"))[0] == b"3.5"
    shared = Counter(zk, f"{root}/c", 0, curator=True)
    assert await shared.add(7) == (0, 7)
    assert (await zk.get(f"{root}/c"))[0] == struct.pack(">i", 7)  # Curator SharedCount


@attrs.frozen
class Settings:
    greeting: str = "hello"
    interval: float = 1.0
    tags: list[str] = attrs.field(factory=list)


async def test_config_updates_live_and_refuses_bad_payloads(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    path = f"{root}/config"
    writer = await clients()
    zk = await clients([proxy.address], 3000)
    async with ConfigWatch(zk, path, Settings, default=Settings()) as config:
        assert config.value == Settings() and config.version == -1
        seen: list[Settings] = []
        async with trio.open_nursery() as nursery:

            async def follow() -> None:
                async for value in config.updates():
                    seen.append(value)

            nursery.start_soon(follow)
            await writer.create(path, b'{"greeting": "hi", "interval": 0.5}', makepath=True)
            await config.wait_for(lambda s: s.greeting == "hi", timeout=5)
            assert config.value == Settings("hi", 0.5) and config.version == 0
            await writer.set(path, b"{not json")
            with trio.fail_after(5):
                while config.error is None:
                    await trio.sleep(0.01)
            assert config.value == Settings("hi", 0.5)  # the last good value stays
            await writer.set(path, b'{"interval": "soon"}')  # wrong type
            await writer.set(path, b'{"greeting": "hey", "tags": ["a"]}')
            await config.wait_for(lambda s: s.greeting == "hey", timeout=5)
            assert config.error is None and config.value.tags == ["a"]
            # A change made while disconnected is picked up after the reconnect.
            proxy.block()
            await writer.set(path, b'{"greeting": "while away"}')
            await trio.sleep(0.2)
            assert config.value.greeting == "hey"
            proxy.unblock()
            await config.wait_for(lambda s: s.greeting == "while away", timeout=10)
            await writer.delete(path)
            await config.wait_for(lambda s: s == Settings(), timeout=5)
            nursery.cancel_scope.cancel()
    greetings = [s.greeting for s in seen]
    assert greetings[0] == "hello" and greetings[-1] == "hello"
    assert greetings[1:-1] == ["hi", "hey", "while away"]
    async with ConfigWatch(zk, path, Settings) as bare:
        with pytest.raises(LookupError):
            _ = bare.value
        await bare.write(Settings("written", 2.0))
        await bare.wait_for(lambda s: s.interval == 2.0, timeout=5)
