"""Locks under connection loss, session expiry, lost replies and controller failover
(docs/recipes.md#connection-loss-session-expiry-failover)."""

from __future__ import annotations

import pytest
import trio

from controller.client import State
from controller.client.errors import ConnectionLossError
from controller.client.recipes import Lock, LockLostError, LockTimeout, OwnershipState
from controller.client.recipes.protected import find_protected
from controller.localquorum import LocalQuorum
from controller.zk.constants import OpCode
from controller.zk.records import SetDataRequest
from tests.recipes.conftest import SHORT_SESSION_MS, ClientFactory
from tests.recipes.proxy import Proxy


async def test_suspension_cancels_the_guard_and_a_reconnect_keeps_the_lock(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    zk = await clients([proxy.address], session_timeout_ms=3000)
    other = Lock(await clients(), f"{root}/lock", "other")
    lock = Lock(zk, f"{root}/lock", "holder")
    held = await lock.acquire()
    assert held is not None
    token, session = held.token, zk.session_id
    with held.guard() as scope:
        proxy.cut()
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert held.state == OwnershipState.SUSPENDED or held.held  # reconnect may be quick
    with trio.fail_after(5):
        while not held.held:
            await trio.sleep(0.01)
    assert zk.session_id == session and held.token == token
    assert await held.verify()
    with pytest.raises(LockTimeout):  # nobody else got it meanwhile
        await other.acquire(timeout=0.5)
    await lock.release()
    assert await other.acquire(timeout=5) is not None


async def test_expiry_loses_the_lock_and_the_next_waiter_gets_it(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    zk = await clients([proxy.address], session_timeout_ms=SHORT_SESSION_MS)
    await zk.create(f"{root}/data", b"0", makepath=True)
    lock = Lock(zk, f"{root}/lock", "holder")
    held = await lock.acquire()
    assert held is not None
    waiter = Lock(await clients(), f"{root}/lock", "waiter")
    async with trio.open_nursery() as nursery:
        got = trio.Event()
        got_at = 0.0

        async def wait() -> None:
            nonlocal got_at
            await waiter.acquire()
            got_at = trio.current_time()
            got.set()

        nursery.start_soon(wait)
        await trio.sleep(0.2)
        assert not got.is_set()
        proxy.block()
        with held.guard(on_suspend=False) as scope:  # runs until the claim is LOST
            await trio.sleep_forever()
        assert scope.cancelled_caught
        # LOST a session timeout (less a margin) after the client last heard from the
        # quorum, and so before the quorum could expire the session and hand the lock on.
        assert held.state == OwnershipState.LOST
        assert held.lost_at == pytest.approx(zk.last_heard + held.grace)
        with trio.fail_after(10):  # the quorum expires the session: the waiter gets the lock
            await got.wait()
        assert held.lost_at < got_at
        assert waiter.ownership is not None and waiter.ownership.token > held.token
        proxy.unblock()
        with trio.fail_after(10):
            while zk.state != State.LOST:
                await trio.sleep(0.02)
        with pytest.raises(LockLostError):
            await held.fenced([(OpCode.SET_DATA, SetDataRequest(f"{root}/data", b"x", -1))])
        assert await lock.release()  # nothing to delete: no error
        await waiter.release()


async def test_a_create_whose_reply_was_lost_is_found_not_duplicated(
    clients: ClientFactory, proxy: Proxy, root: str
) -> None:
    zk = await clients([proxy.address], session_timeout_ms=5000)
    await zk.create(root)
    # What protection prevents: a plain sequential create whose reply is lost has still
    # been applied, so a blind retry would make a second node.
    proxy.cut_before_next_reply()
    with pytest.raises(ConnectionLossError):
        await zk.create(f"{root}/plain-", ephemeral=True, sequence=True)
    assert len(await zk.get_children(root)) == 1
    # The lock's protected create: the reply of its create is lost, it finds its node.
    lock = Lock(zk, f"{root}/lock", "a")
    cuts = proxy.cuts
    proxy.cut_before_next_reply()
    held = await lock.acquire(timeout=10)
    assert held is not None and proxy.cuts == cuts + 1
    mine = await find_protected(zk, f"{root}/lock", lock.prefix)
    assert mine == [held.path.rsplit("/", 1)[1]]
    assert len(await zk.get_children(f"{root}/lock")) == 1
    await lock.release()
    assert await zk.get_children(f"{root}/lock") == []


async def test_killing_the_connected_controller_keeps_the_lock(
    clients: ClientFactory, healed_quorum: LocalQuorum, root: str
) -> None:
    """Failover: the session moves to another controller; the lock stays held (SUSPENDED in
    between), the waiter keeps waiting, and gets it on release."""
    quorum = healed_quorum
    zk = await clients(session_timeout_ms=5000)
    lock = Lock(zk, f"{root}/lock", "holder")
    held = await lock.acquire()
    assert held is not None
    assert zk.server is not None
    victim = quorum.client_ports.index(zk.server.port) + 1
    others = [a for i, a in enumerate(quorum.addresses, 1) if i != victim]
    waiter = Lock(await clients(others), f"{root}/lock", "waiter")
    states: list[OwnershipState] = []
    zk.add_listener(lambda state: states.append(held.state))
    async with trio.open_nursery() as nursery:
        got = trio.Event()

        async def wait() -> None:
            await waiter.acquire()
            got.set()

        nursery.start_soon(wait)
        await trio.to_thread.run_sync(quorum.kill, victim)
        with trio.fail_after(15):
            while OwnershipState.SUSPENDED not in states:  # the client noticed
                await trio.sleep(0.01)
            while not held.held:  # and reconnected to another controller, same session
                await trio.sleep(0.01)
        assert zk.server is not None and zk.server.port != quorum.client_ports[victim - 1]
        assert await held.verify()
        await trio.sleep(0.3)
        assert not got.is_set()
        await lock.release()
        with trio.fail_after(10):
            await got.wait()
        await waiter.release()
