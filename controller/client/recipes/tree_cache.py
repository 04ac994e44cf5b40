"""A local mirror of a subtree (data and Stat of every node), kept current by one persistent
recursive watch (`addWatch`, ZooKeeper 3.6+), like Curator's `CuratorCache`.

    async with TreeCache(zk, "/app") as cache:          # loaded on entry
        node = cache.get("/app/config")                  # NodeData(path, data, stat) | None
        names = cache.children("/app")
        async with cache.subscribe() as events:          # TreeEvent(type, path, node)
            async for event in events: ...

Guarantees: after entry the cache holds the whole subtree as read after the watch was set;
every later create, data change and delete below the root is applied (data read after the
event, so never older than the event). Events between a disconnection and the reconnect are
not replayed by persistent watches, so on every reconnect the cache re-reads the subtree and
reports the differences (NODE_ADDED / NODE_UPDATED / NODE_REMOVED, then
CONNECTION_RECONNECTED): the mirror converges to the quorum's state. While disconnected it may
be stale (CONNECTION_SUSPENDED says so); after a session expiry it stops (CONNECTION_LOST).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from controller.client.client import State, WatchedEvent, ZkClient
from controller.client.errors import RETRYABLE, NoNodeError, SessionExpiredError
from controller.client.recipes._common import GONE_OR_RETRYABLE, Running, child, retry
from controller.zk.constants import EventType
from controller.zk.records import Stat

log = logging.getLogger(__name__)


class TreeEventType(enum.StrEnum):
    """What changed in a `TreeEvent`."""

    NODE_ADDED = "NODE_ADDED"
    NODE_UPDATED = "NODE_UPDATED"
    NODE_REMOVED = "NODE_REMOVED"
    INITIALIZED = "INITIALIZED"
    CONNECTION_SUSPENDED = "CONNECTION_SUSPENDED"
    CONNECTION_RECONNECTED = "CONNECTION_RECONNECTED"
    CONNECTION_LOST = "CONNECTION_LOST"


@attrs.frozen
class NodeData:
    """One mirrored node: its data and Stat."""

    path: str
    data: bytes
    stat: Stat


@attrs.frozen
class TreeEvent:
    """A change the cache saw below its root."""

    type: TreeEventType
    path: str | None = None
    node: NodeData | None = None


class TreeCache(Running):
    """A local mirror of the subtree at `root`, loaded on `async with` and kept current
    (see the module docstring)."""

    def __init__(self, zk: ZkClient, root: str) -> None:
        self.zk = zk
        self.root = root.rstrip("/") or "/"
        self.nodes: dict[str, NodeData] = {}
        self.initialized = False
        self.lost = False
        inbox = trio.open_memory_channel[WatchedEvent | State](math.inf)
        self._inbox_send, self._inbox = inbox
        self._subscribers: list[trio.MemorySendChannel[TreeEvent]] = []
        self._changed = trio.Event()
        self._callback = self._on_watch  # one object: the client dedupes by identity

    # ------------------------------------------------------------------ reading the mirror

    def get(self, path: str) -> NodeData | None:
        return self.nodes.get(path)

    def __contains__(self, path: str) -> bool:
        return path in self.nodes

    def children(self, path: str) -> list[str]:
        """Names of the cached children of `path`, sorted."""
        prefix = path.rstrip("/") + "/"
        return sorted(
            p[len(prefix) :]
            for p in self.nodes
            if p.startswith(prefix) and "/" not in p[len(prefix) :]
        )

    def snapshot(self) -> dict[str, bytes]:
        """path -> data of every cached node."""
        return {path: node.data for path, node in self.nodes.items()}

    async def wait_for(
        self, predicate: Callable[[TreeCache], bool], timeout: float | None = None
    ) -> None:
        """Wait until `predicate(cache)` holds (trio.TooSlowError after `timeout`)."""
        with trio.fail_after(math.inf if timeout is None else timeout):
            while not predicate(self):
                await self._changed.wait()

    @asynccontextmanager
    async def subscribe(
        self, buffer: int = 10000
    ) -> AsyncIterator[trio.MemoryReceiveChannel[TreeEvent]]:
        """Events from now on, as an async iterator (a subscriber too slow to keep `buffer`
        events queued loses events, with a warning)."""
        send, receive = trio.open_memory_channel[TreeEvent](buffer)
        self._subscribers.append(send)
        try:
            yield receive
        finally:
            self._subscribers.remove(send)

    # ------------------------------------------------------------------ keeping it current

    def _on_watch(self, event: WatchedEvent) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self._inbox_send.send_nowait(event)

    def _on_state(self, state: State) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self._inbox_send.send_nowait(state)

    def _emit(self, event: TreeEvent) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                log.warning("tree cache %s: subscriber too slow, event dropped", self.root)
        self._changed.set()
        self._changed = trio.Event()

    def _store(self, node: NodeData) -> None:
        old = self.nodes.get(node.path)
        if old is not None and old.stat.mzxid == node.stat.mzxid:
            return
        self.nodes[node.path] = node
        kind = TreeEventType.NODE_ADDED if old is None else TreeEventType.NODE_UPDATED
        self._emit(TreeEvent(kind, node.path, node))

    def _remove(self, path: str) -> None:
        below = path.rstrip("/") + "/"
        doomed = [p for p in self.nodes if p == path or p.startswith(below)]
        for p in sorted(doomed, key=len, reverse=True):  # children first
            node = self.nodes.pop(p)
            self._emit(TreeEvent(TreeEventType.NODE_REMOVED, p, node))

    async def _read(self, path: str) -> NodeData | None:
        try:
            data, stat = await self.zk.get(path)
        except NoNodeError:
            return None
        return NodeData(path, data, stat)

    async def _walk(self) -> dict[str, NodeData]:
        """The whole subtree as the quorum has it now (after a sync)."""
        found: dict[str, NodeData] = {}
        await self.zk.sync(self.root)
        todo = [self.root]
        while todo:
            path = todo.pop()
            node = await self._read(path)
            if node is None:
                continue
            found[path] = node
            if node.stat.num_children:
                try:
                    names = await self.zk.get_children(path)
                except NoNodeError:
                    continue
                todo.extend(child(path, name) for name in names)
        return found

    async def _resync(self) -> None:
        fresh = await retry(self.zk, self._walk)
        for path in sorted(set(self.nodes) - set(fresh), key=len, reverse=True):
            self._remove(path)
        for path in sorted(fresh, key=len):
            self._store(fresh[path])

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        zk = self.zk
        zk.add_listener(self._on_state)
        try:
            with contextlib.suppress(*RETRYABLE):  # else the client adds it when it reconnects
                await zk.add_persistent_watch(self.root, self._callback)
            await self._resync()
            self.initialized = True
            self._emit(TreeEvent(TreeEventType.INITIALIZED))
            task_status.started()
            async for item in self._inbox:
                if isinstance(item, WatchedEvent):
                    await self._apply(item)
                elif item == State.SUSPENDED:
                    self._emit(TreeEvent(TreeEventType.CONNECTION_SUSPENDED))
                elif item == State.CONNECTED:
                    await self._resync()
                    self._emit(TreeEvent(TreeEventType.CONNECTION_RECONNECTED))
                elif item in (State.LOST, State.CLOSED):
                    self.lost = True
                    self._emit(TreeEvent(TreeEventType.CONNECTION_LOST))
                    return
        except SessionExpiredError:
            self.lost = True
            self._emit(TreeEvent(TreeEventType.CONNECTION_LOST))
        finally:
            zk.remove_listener(self._on_state)
            for send in self._subscribers:
                send.close()  # subscribers' iterations end

    async def _apply(self, event: WatchedEvent) -> None:
        if event.type == EventType.NODE_DELETED:
            self._remove(event.path)
        elif event.type in (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED):
            try:
                node = await self._read(event.path)
            except RETRYABLE:
                return  # the reconnect's resync reads it
            if node is None:
                self._remove(event.path)
            else:
                self._store(node)

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[TreeCache]:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._run)
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(2),
                    contextlib.suppress(*GONE_OR_RETRYABLE),
                ):
                    await self.zk.remove_persistent_watch(self.root, self._callback)
