"""A queue whose items stay until consumed, kazoo's `LockingQueue` layout (kazoo producers and
workers interoperate with these): a worker that crashes mid-item does not lose it.

Layout: items are persistent sequential nodes `<path>/entries/entry-<priority:03d>-<seq>`;
a worker locks an item by creating the ephemeral node `<path>/taken/<entry name>` holding its
worker id (a random hex id per LockingQueue object). Only unlocked items are handed out, in
name order (priority, then FIFO). Consuming deletes the entry and its lock in one multi;
releasing deletes only the lock.

    queue = LockingQueue(zk, "/app/tasks")
    await queue.put(b"task-1")
    async with queue.take() as item:        # consumed on normal exit, released on error
        await process(item.value)
    # or kazoo-style: value = await queue.get(); ...; await queue.consume()

Guarantees: an item is locked by at most one worker at a time, and stays in the queue until
a worker holding its lock consumes it. If the worker's session ends (crash, expiry) its lock
node goes and the item is handed out again: at-least-once processing, exactly-once
consumption. `consume(extra_ops)` makes other writes atomic with the consumption (e.g. record
the result, or assign the task, exactly once). The item's lock is an `Ownership` (`item.lock`):
SUSPENDED while disconnected, LOST when the session expired (another worker may have it
now; `consume` then fails with LockLostError and writes nothing). Connection loss: the lock
node is recognised by its worker id after a lost reply; a consume whose reply was lost is
checked (entry gone = consumed). `put` has the same caveat as Queue's (a lost reply raises).
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from controller.client.client import OPEN_ACL_UNSAFE, State, ZkClient
from controller.client.errors import RETRYABLE, NodeExistsError, NoNodeError
from controller.client.recipes._common import (
    LockLostError,
    Wakeup,
    check_usable,
    child,
    cleanup,
    ensure_path,
    raise_for_multi,
    retry,
    synced_children,
)
from controller.client.recipes.ownership import Ownership
from controller.client.recipes.queue import check_priority
from controller.zk.constants import CreateMode, OpCode
from controller.zk.records import CreateRequest, DeleteRequest


@attrs.define
class LockedItem:
    """An item this worker holds: `name` (entry node name), `value`, `lock` (Ownership)."""

    name: str
    value: bytes
    lock: Ownership


class LockingQueue:
    """A queue whose items stay until consumed (kazoo's LockingQueue layout)."""

    def __init__(self, zk: ZkClient, path: str) -> None:
        self.zk = zk
        self.path = path.rstrip("/")
        self.id = uuid.uuid4().hex.encode()
        self.entries = self.path + "/entries"
        self.taken = self.path + "/taken"
        self.item: LockedItem | None = None
        self._ensured = False

    async def _ensure(self) -> None:
        if not self._ensured:
            await ensure_path(self.zk, self.taken)
            await ensure_path(self.zk, self.entries)
            self._ensured = True

    def _create_op(self, value: bytes, priority: int) -> tuple[int, Any]:
        check_priority(priority)
        path = child(self.entries, f"entry-{priority:03d}-")
        mode = int(CreateMode.PERSISTENT_SEQUENTIAL)
        return (OpCode.CREATE, CreateRequest(path, value, OPEN_ACL_UNSAFE, mode))

    async def put(self, value: bytes, priority: int = 100) -> None:
        """Append an item. ConnectionLossError means the outcome is unknown."""
        check_priority(priority)
        await self._ensure()
        await self.zk.create(child(self.entries, f"entry-{priority:03d}-"), value, sequence=True)

    async def put_all(self, values: Sequence[bytes], priority: int = 100) -> None:
        """Append several items atomically (one multi): all or none."""
        await self._ensure()
        raise_for_multi(await self.zk.multi([self._create_op(v, priority) for v in values]))

    async def length(self) -> int:
        """Items in the queue now, locked ones included (read after a `sync`)."""
        await self._ensure()
        children = functools.partial(synced_children, self.zk, self.entries)
        return len(await retry(self.zk, children))

    async def get(self, timeout: float | None = None) -> bytes | None:
        """Lock and return the next unlocked item (the held one if not consumed yet); None
        after `timeout` seconds."""
        if self.item is not None:
            return self.item.value
        await self._ensure()
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        while True:
            check_usable(self.zk)
            with Wakeup(self.zk) as wakeup:
                try:
                    item = await self._try_take(wakeup)
                except RETRYABLE:
                    await trio.sleep(0.05)
                    continue
                if item is not None:
                    self.item = item
                    return item.value
                if not await wakeup.wait(deadline):
                    return None

    async def _try_take(self, wakeup: Wakeup) -> LockedItem | None:
        zk = self.zk
        entries = await zk.get_children(self.entries, watch=wakeup.watch)
        taken = set(await zk.get_children(self.taken, watch=wakeup.watch))
        for name in sorted(e for e in entries if e not in taken):
            lock = await self._lock(name)
            if lock is None:
                continue
            try:
                value, _ = await retry(zk, functools.partial(zk.get, child(self.entries, name)))
            except NoNodeError:  # consumed meanwhile: drop our lock
                await lock.delete()
                continue
            return LockedItem(name, value, lock)
        return None

    async def _lock(self, name: str) -> Ownership | None:
        """Create the lock node of entry `name`; None if another worker holds it."""
        zk = self.zk
        path = child(self.taken, name)
        try:
            await retry(zk, lambda: self._create_lock(path))
        except NodeExistsError:
            return None
        stat = await retry(zk, lambda: zk.exists(path))
        return None if stat is None else Ownership(zk, path, stat)

    async def _create_lock(self, path: str) -> None:
        try:
            await self.zk.create(path, self.id, ephemeral=True)
        except NodeExistsError:
            data, stat = await self.zk.get(path)
            if data != self.id or stat.ephemeral_owner != self.zk.session_id:
                raise  # another worker's
            # ours: an earlier attempt's reply was lost

    async def holds_lock(self) -> bool:
        """Whether our lock node of the held item is still ours (asks the quorum)."""
        if self.item is None:
            return False
        return await self.item.lock.verify()

    async def consume(self, extra_ops: Sequence[tuple[int, Any]] = ()) -> bool:
        """Remove the held item for good, atomically with `extra_ops` (multi-op records).
        False if no item is held. LockLostError if our lock is gone (nothing written)."""
        item = self.item
        if item is None:
            return False
        entry = child(self.entries, item.name)
        ops = [
            (OpCode.DELETE, DeleteRequest(entry, -1)),
            (OpCode.DELETE, DeleteRequest(item.lock.path, -1)),
            *extra_ops,
        ]
        while True:
            try:
                await item.lock.fenced(ops)
                break
            except RETRYABLE:
                # Outcome unknown: our lock gone (with the session alive) means it applied.
                gone = not await retry(self.zk, lambda: self._exists_synced(item.lock.path))
                if gone and self.zk.state == State.CONNECTED:
                    break
            except LockLostError:
                self.item = None
                raise
        item.lock.mark_released()
        self.item = None
        return True

    async def _exists_synced(self, path: str) -> bool:
        await self.zk.sync(path)
        return await self.zk.exists(path) is not None

    async def release(self) -> bool:
        """Unlock the held item without consuming it (another worker can take it)."""
        item, self.item = self.item, None
        if item is None:
            return False
        await item.lock.delete()
        return True

    @asynccontextmanager
    async def take(self, timeout: float | None = None) -> AsyncIterator[LockedItem]:
        """Lock the next item (trio.TooSlowError after `timeout`); consume it if the block
        ends normally (unless the block called `consume` itself), release it if the block
        raises or is cancelled."""
        value = await self.get(timeout)
        if value is None:
            raise trio.TooSlowError(f"{self.path}: no item within {timeout:g} s")
        assert self.item is not None
        item = self.item
        try:
            yield item
        except BaseException:
            if self.item is item:
                await cleanup(self.release)
            raise
        if self.item is item:  # not consumed by the block itself (e.g. with extra ops)
            await self.consume()
