"""A leader latch: a flag that says whether this participant leads, which can be checked or
awaited, in Apache Curator's `LeaderLatch` layout.

Layout: each participant creates a protected ephemeral sequential node
`<path>/_c_<uuid>-latch-<seq>` holding its identifier; the lowest sequence leads; the others
each watch their predecessor only.

    async with LeaderLatch(zk, "/app/latch", "node-1") as latch:
        await latch.await_leadership()
        while latch.has_leadership: ...

Guarantees: `has_leadership` is True only while connected and holding the lowest node, so at
most one connected participant sees True. On a connection loss it turns False at once (as
Curator's); if the client reconnects with the same session it is re-evaluated (the node
survived). When the session expires the node is gone: the latch is lost for good
(`lost` is True, `await_leadership` raises SessionExpiredError). Leaving the `async with`
deletes the node, handing leadership to the next participant.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import trio

from controller.client.client import State, ZkClient
from controller.client.errors import RETRYABLE, NoNodeError, SessionExpiredError
from controller.client.recipes._common import (
    Running,
    Wakeup,
    check_usable,
    child,
    cleanup,
    ensure_path,
    retry,
    sequence_of,
)
from controller.client.recipes.protected import curator_prefix, protected_create

LOCK_NAME = "latch-"


def _order(children: list[str]) -> list[str]:
    """Latch participants by sequence number (Curator's `fixForSorting`)."""
    keyed = []
    for name in children:
        seq = sequence_of(name) if LOCK_NAME in name else None
        if seq is not None:
            keyed.append((seq, name))
    return [name for _, name in sorted(keyed)]


class LeaderLatch(Running):
    """A flag saying whether this participant leads at `path` (Curator's LeaderLatch layout)."""

    def __init__(self, zk: ZkClient, path: str, identifier: str = "") -> None:
        self.zk = zk
        self.path = path.rstrip("/")
        self.identifier = identifier
        self.data = identifier.encode()
        self.node: str | None = None
        self.lost = False
        self._leader = False
        self._changed = trio.Event()

    @property
    def has_leadership(self) -> bool:
        return self._leader and self.zk.state == State.CONNECTED

    def _set(self, leader: bool) -> None:
        leader = leader and self.zk.state == State.CONNECTED
        if leader != self._leader:
            self._leader = leader
            self._changed.set()
            self._changed = trio.Event()

    async def await_leadership(self, timeout: float | None = None) -> bool:
        """Wait until leader: True, or False after `timeout` seconds."""
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        while not self.has_leadership:
            if self.lost:
                raise SessionExpiredError("the latch's session expired")
            changed = self._changed
            with trio.move_on_at(deadline):
                await changed.wait()
            if trio.current_time() >= deadline:
                return self.has_leadership
        return True

    async def await_not_leader(self) -> None:
        """Return as soon as this participant is not (or no longer) the leader."""
        while self.has_leadership:
            await self._changed.wait()

    async def participants(self) -> list[str]:
        """Identifiers of every participant, the leader first."""

        async def attempt() -> list[str]:
            await self.zk.sync(self.path)  # the latest view, as every other client's
            result = []
            for name in _order(await self.zk.get_children(self.path)):
                with suppress(NoNodeError):
                    result.append((await self.zk.get(child(self.path, name)))[0].decode())
            return result

        return await retry(self.zk, attempt)

    async def leader(self) -> str | None:
        participants = await self.participants()
        return participants[0] if participants else None

    def _on_state(self, state: State) -> None:
        if state != State.CONNECTED:
            self._set(False)  # at once: the loop re-checks once reconnected

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.zk.add_listener(self._on_state)
        try:
            await self._follow(task_status)
        finally:
            self.zk.remove_listener(self._on_state)

    async def _follow(self, task_status: trio.TaskStatus[None]) -> None:
        zk = self.zk
        await ensure_path(zk, self.path)
        prefix = curator_prefix(LOCK_NAME)
        self.node = await protected_create(zk, self.path, prefix, self.data)
        started = False
        while True:
            try:
                check_usable(zk)
                with Wakeup(zk) as wakeup:
                    order = _order(await zk.get_children(self.path))
                    if self.node not in order:  # deleted by hand: join again
                        self.node = await protected_create(zk, self.path, prefix, self.data)
                        continue
                    index = order.index(self.node)
                    if index == 0:
                        self._set(True)
                    else:
                        self._set(False)
                        try:
                            await zk.get(child(self.path, order[index - 1]), watch=wakeup.watch)
                        except NoNodeError:
                            continue
                    if not started:
                        task_status.started()
                        started = True
                    await wakeup.wait()
                    if zk.state != State.CONNECTED:
                        self._set(False)
            except RETRYABLE:
                self._set(False)
                await trio.sleep(0.05)
            except SessionExpiredError:
                self._set(False)
                self.lost = True
                self._changed.set()
                if not started:
                    raise
                return

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[LeaderLatch]:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._run)
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()
                self._set(False)
                node, self.node = self.node, None
                zk = self.zk
                if node is not None and not self.lost:

                    async def delete() -> None:
                        with suppress(NoNodeError):
                            await retry(zk, lambda: zk.delete(child(self.path, node)))

                    await cleanup(delete, max(5.0, 2 * zk.timeout_ms / 1000))
