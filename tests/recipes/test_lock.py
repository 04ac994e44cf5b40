"""Lock: mutual exclusion, FIFO, no herd effect, timeout, fencing (docs/recipes.md#lock)."""

from __future__ import annotations

import socket

import pytest
import trio

from controller.client import ZkClient
from controller.client.recipes import Lock, LockLostError, LockTimeout, OwnershipState
from controller.client.recipes._common import child
from controller.localquorum import LocalQuorum
from controller.zk.constants import OpCode
from controller.zk.records import SetDataRequest
from tests.recipes.conftest import ClientFactory


async def test_mutual_exclusion_fifo_and_increasing_tokens(
    clients: ClientFactory, root: str
) -> None:
    inside = 0
    most = 0
    tokens: list[int] = []
    meals: dict[int, int] = {}

    async def worker(n: int, zk: ZkClient) -> None:
        nonlocal inside, most
        lock = Lock(zk, f"{root}/lock", f"w{n}")
        for _ in range(3):
            async with lock as held:
                assert held.held
                inside += 1
                most = max(most, inside)
                tokens.append(held.token)
                await trio.sleep(0.01)
                inside -= 1
                meals[n] = meals.get(n, 0) + 1

    zks = [await clients() for _ in range(4)]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n, zk in enumerate(zks):
                nursery.start_soon(worker, n, zk)
    assert most == 1
    assert meals == {0: 3, 1: 3, 2: 3, 3: 3}
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    await zks[0].sync(f"{root}/lock")  # other sessions deleted the last nodes
    assert await zks[0].get_children(f"{root}/lock") == []


def watched_paths(quorum: LocalQuorum) -> dict[str, int]:
    """Every path any controller has a watch on -> number of watching sessions (`wchp`)."""
    counts: dict[str, int] = {}
    for address in quorum.addresses:
        with socket.create_connection((address.host, address.port), timeout=5) as sock:
            sock.sendall(b"wchp")
            text = b""
            while chunk := sock.recv(65536):
                text += chunk
        path = ""
        for line in text.decode().splitlines():
            if line and not line.startswith("\t"):
                path = line
            elif line.strip():
                counts[path] = counts.get(path, 0) + 1
    return counts


async def test_each_waiter_watches_only_its_predecessor(
    clients: ClientFactory, root: str, quorum: LocalQuorum
) -> None:
    """No herd effect: with one holder and four waiters, each lock node but the last is
    watched by exactly one session, and a release wakes the next waiter only."""
    path = f"{root}/lock"
    holder = Lock(await clients(), path, "holder")
    await holder.acquire()
    waiters = [Lock(await clients(), path, f"w{n}") for n in range(4)]
    order: list[str] = []
    async with trio.open_nursery() as nursery:

        async def wait(lock: Lock) -> None:
            async with lock:
                order.append(lock.identifier)

        for lock in waiters:
            nursery.start_soon(wait, lock)
            await trio.sleep(0.1)  # queue them in this order
        await holder.zk.sync(path)
        nodes = sorted(await holder.zk.get_children(path), key=lambda n: n[-10:])
        assert len(nodes) == 5
        expected = {child(path, n): 1 for n in nodes[:-1]}
        with trio.fail_after(10):  # until the last waiter has set its watch
            while True:
                watched = await trio.to_thread.run_sync(watched_paths, quorum)
                mine = {p: c for p, c in watched.items() if p.startswith(path + "/")}
                if mine == expected or any(c > 1 for c in mine.values()):
                    break
                await trio.sleep(0.05)
        assert mine == expected
        assert await holder.contenders() == ["holder", "w0", "w1", "w2", "w3"]
        await holder.release()
    assert order == ["w0", "w1", "w2", "w3"]  # FIFO


async def test_timeout_nonblocking_and_cancel_leave_no_node(
    clients: ClientFactory, root: str
) -> None:
    path = f"{root}/lock"
    a, b = await clients(), await clients()
    held = await Lock(a, path, "a").acquire()
    assert held is not None
    other = Lock(b, path, "b")
    start = trio.current_time()
    with pytest.raises(LockTimeout):
        await other.acquire(timeout=0.3)
    assert 0.3 <= trio.current_time() - start < 2
    assert await other.acquire(blocking=False) is None
    with trio.move_on_after(0.2):
        await other.acquire()
    await a.sync(path)  # b's deletes are done: make a's controller catch up
    assert len(await a.get_children(path)) == 1  # only the holder's node is left
    assert not other.is_acquired


async def test_fenced_write_only_while_held(clients: ClientFactory, root: str) -> None:
    zk = await clients()
    await zk.create(f"{root}/data", b"0", makepath=True)
    lock = Lock(zk, f"{root}/lock", "a")
    held = await lock.acquire()
    assert held is not None
    await held.fenced([(OpCode.SET_DATA, SetDataRequest(f"{root}/data", b"1", -1))])
    assert (await zk.get(f"{root}/data"))[0] == b"1"
    await zk.delete(held.path)  # someone removes our lock node (an operator, say)
    with pytest.raises(LockLostError):
        await held.fenced([(OpCode.SET_DATA, SetDataRequest(f"{root}/data", b"2", -1))])
    assert (await zk.get(f"{root}/data"))[0] == b"1"
    assert held.state == OwnershipState.LOST
    await lock.release()


async def test_verify_notices_a_deleted_node(clients: ClientFactory, root: str) -> None:
    zk = await clients()
    lock = Lock(zk, f"{root}/lock")
    held = await lock.acquire()
    assert held is not None and await held.verify()
    await zk.delete(held.path)
    assert not await held.verify()
    assert held.state == OwnershipState.LOST
