"""A barrier, kazoo's `Barrier` layout: the barrier is up while its node exists.

Layout: the node `<path>` itself (persistent, no data needed). `create()` raises it,
`remove()` lowers it, `wait()` blocks until it is gone. kazoo barriers on the same path are
the same barrier.

    barrier = Barrier(zk, "/app/start")
    await barrier.create()                 # coordinator
    await barrier.wait(timeout=30)         # everyone else: True once removed

Guarantees: `wait` returns True only after the quorum has deleted the node; a removal that
happened while disconnected is noticed after the reconnect (watches are re-armed with the
last zxid seen, and the waiter re-checks after every state change). A connection loss is
retried within the session (unlike kazoo's, which raises); SessionExpiredError if the session
is lost while waiting (the barrier is persistent, so a new client can wait again).
"""

from __future__ import annotations

import functools
import math

import trio

from controller.client.client import WatchedEvent, ZkClient
from controller.client.errors import RETRYABLE, NoNodeError
from controller.client.recipes._common import Wakeup, check_usable, create_if_missing, retry
from controller.zk.constants import EventType


def _on_event(cleared: trio.Event, wakeup: Wakeup, event: WatchedEvent) -> None:
    if event.type == EventType.NODE_DELETED:
        cleared.set()
    wakeup.event.set()


class Barrier:
    """A barrier at `path`, up while the node exists (kazoo's layout)."""

    def __init__(self, zk: ZkClient, path: str) -> None:
        self.zk = zk
        self.path = path.rstrip("/")

    async def create(self) -> bool:
        """Raise the barrier (and the missing parents); False if it was already up."""
        return await create_if_missing(self.zk, self.path)

    async def remove(self) -> bool:
        """Lower the barrier; False if it was not up."""

        async def attempt() -> bool:
            try:
                await self.zk.delete(self.path)
            except NoNodeError:
                return False
            return True

        return await retry(self.zk, attempt)

    async def is_up(self) -> bool:
        return await retry(self.zk, lambda: self.zk.exists(self.path)) is not None

    async def wait(self, timeout: float | None = None) -> bool:
        """Block until the barrier is removed: True, or False after `timeout` seconds. Starts
        with a `sync`, so a barrier raised before this call (by any client) is seen."""
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        await retry(self.zk, lambda: self.zk.sync(self.path))  # see a barrier raised earlier
        while True:
            check_usable(self.zk)
            with Wakeup(self.zk) as wakeup:
                cleared = trio.Event()
                try:
                    stat = await self.zk.exists(
                        self.path, watch=functools.partial(_on_event, cleared, wakeup)
                    )
                except RETRYABLE:
                    if trio.current_time() >= deadline:
                        return False
                    await trio.sleep(0.05)
                    continue
                if stat is None or cleared.is_set():
                    return True
                if not await wakeup.wait(deadline):
                    return False
                if cleared.is_set():
                    return True
