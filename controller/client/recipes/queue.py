"""A distributed FIFO / priority queue, kazoo's `Queue` layout (kazoo producers and consumers
interoperate with these).

Layout: each item is a persistent sequential node `<path>/entry-<priority:03d>-<seq>` holding
the item; names sort by priority (0 first, 999 last, default 100), then by insertion order. A
consumer takes the first name: reads it, then deletes it; the delete decides between
competing consumers (NoNode: someone else got it, try the next).

    queue = Queue(zk, "/app/jobs")
    await queue.put(b"job-1")                       # FIFO
    await queue.put(b"urgent", priority=1)          # ahead of priority 100
    item = await queue.get()                        # None if empty
    item = await queue.take(timeout=5)              # wait for one
    async for item in queue: ...                    # forever

Guarantees: each item is handed to at most one consumer in the normal case; FIFO within a
priority. An item is removed when handed out, so a consumer that crashes afterwards loses it
(use LockingQueue for that). Under connection loss, honestly: a `put` whose reply was lost
raises ConnectionLossError (the item may or may not be in the queue: a retry could duplicate
it); a take whose delete reply was lost returns the item if it is gone afterwards, so in
that narrow window the item may reach two consumers (at-least-once), never zero.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator

import trio

from controller.client.client import ZkClient
from controller.client.errors import RETRYABLE, NoNodeError
from controller.client.recipes._common import (
    Wakeup,
    check_usable,
    child,
    ensure_path,
    retry,
    synced_children,
)

PREFIX = "entry-"


def check_priority(priority: int) -> None:
    if not isinstance(priority, int) or not 0 <= priority <= 999:
        raise ValueError("priority must be an int between 0 and 999")


class Queue:
    """A FIFO/priority queue at `path` (kazoo's layout)."""

    def __init__(self, zk: ZkClient, path: str) -> None:
        self.zk = zk
        self.path = path.rstrip("/")
        self._ensured = False

    async def _ensure(self) -> None:
        if not self._ensured:
            await ensure_path(self.zk, self.path)
            self._ensured = True

    async def put(self, value: bytes, priority: int = 100) -> str:
        """Append an item; returns its node name. ConnectionLossError: outcome unknown."""
        check_priority(priority)
        await self._ensure()
        created = await self.zk.create(
            child(self.path, f"{PREFIX}{priority:03d}-"), value, sequence=True
        )
        return created.rsplit("/", 1)[1]

    async def length(self) -> int:
        """Items in the queue now (read after a `sync`)."""
        await self._ensure()
        return len(await retry(self.zk, functools.partial(synced_children, self.zk, self.path)))

    async def get(self) -> bytes | None:
        """Take the first item, or None if the queue is empty."""
        await self._ensure()
        return await self._take_first(None)

    async def _take_first(self, wakeup: Wakeup | None) -> bytes | None:
        zk = self.zk
        names = await retry(
            zk, lambda: zk.get_children(self.path, watch=wakeup.watch if wakeup else None)
        )
        for name in sorted(names):
            path = child(self.path, name)
            try:
                data, _ = await retry(zk, functools.partial(zk.get, path))
            except NoNodeError:
                continue
            try:
                await zk.delete(path)
                return data
            except NoNodeError:
                continue  # another consumer took it
            except RETRYABLE:
                # The delete's outcome is unknown: gone now means it was ours, or another
                # consumer's; hand it out rather than lose it (see the module docstring).
                if await retry(zk, functools.partial(_synced_exists, zk, path)):
                    continue  # not deleted: leave it to the next attempt
                return data
        return None

    async def take(self, timeout: float | None = None) -> bytes:
        """Wait for an item and take it (trio.TooSlowError after `timeout` seconds)."""
        await self._ensure()
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        while True:
            check_usable(self.zk)
            with Wakeup(self.zk) as wakeup:
                try:
                    item = await self._take_first(wakeup)
                except RETRYABLE:
                    await trio.sleep(0.05)
                    continue
                if item is not None:
                    return item
                if not await wakeup.wait(deadline):
                    raise trio.TooSlowError(f"{self.path}: no item within {timeout:g} s")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            yield await self.take()


async def _synced_exists(zk: ZkClient, path: str) -> bool:
    await zk.sync(path)
    return await zk.exists(path) is not None
