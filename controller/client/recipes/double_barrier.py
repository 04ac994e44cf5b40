"""A double barrier: N participants enter together and leave together, kazoo's
`DoubleBarrier` layout (kazoo participants and these count each other).

Layout: each participant is an ephemeral node `<path>/<uuid-hex>` holding its identifier; the
node `<path>/ready` appears once N participants are in.

- enter: create our node, watch `ready`; if at least N participants are there, create
  `ready`; else wait until it appears.
- leave (ZooKeeper's recipe): if we are the only participant left, delete our node; if we
  are the lowest, wait for the highest to go; otherwise delete our node and wait for the
  lowest to go; repeat until nobody is left. The last one out deletes `ready`, so the path can
  be used for the next round (kazoo deletes it on its first leave instead; both work).

    async with DoubleBarrier(zk, "/app/round-1", 3, identifier="w1"):
        ...   # starts when all 3 are in; the block's exit waits until all 3 are out

Guarantees: nobody passes `enter` before N participants have joined, and nobody passes
`leave` while a participant is still inside. Connection loss is retried within the session
(the participant node is protected by its GUID name). A participant whose session expires
drops out (its node goes), so the others may leave without it; it gets SessionExpiredError.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import uuid
from types import TracebackType

import trio

from controller.client.client import ZkClient
from controller.client.errors import RETRYABLE, NodeExistsError, NoNodeError
from controller.client.recipes._common import (
    LockTimeout,
    Wakeup,
    check_usable,
    child,
    cleanup,
    ensure_path,
    retry,
    watch_existing,
)
from controller.client.recipes.protected import protected_create

READY = "ready"


class DoubleBarrier:
    """N participants enter together and leave together at `path` (kazoo's layout)."""

    def __init__(
        self, zk: ZkClient, path: str, num_clients: int, identifier: str | None = None
    ) -> None:
        if num_clients < 1:
            raise ValueError("num_clients must be at least 1")
        self.zk = zk
        self.path = path.rstrip("/")
        self.num_clients = num_clients
        self.identifier = identifier or f"{socket.getfqdn()}-{os.getpid()}"
        self.node = uuid.uuid4().hex
        self.participating = False

    async def _participants(self, wakeup: Wakeup | None = None) -> list[str]:
        watch = wakeup.watch if wakeup else None
        return sorted(c for c in await self.zk.get_children(self.path, watch) if c != READY)

    async def enter(self, timeout: float | None = None) -> None:
        """Join and wait until `num_clients` participants are in (LockTimeout: we leave)."""
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        zk = self.zk
        await ensure_path(zk, self.path)
        with contextlib.suppress(NodeExistsError):
            await protected_create(
                zk, self.path, self.node, self.identifier.encode(), sequence=False
            )
        self.participating = True
        entered = False
        try:
            while True:
                check_usable(zk)
                with Wakeup(zk) as wakeup:
                    try:
                        if await zk.exists(child(self.path, READY), watch=wakeup.watch):
                            entered = True
                            return
                        if len(await self._participants(wakeup)) >= self.num_clients:
                            with contextlib.suppress(NodeExistsError):
                                await zk.create(child(self.path, READY))
                            entered = True
                            return
                    except RETRYABLE:
                        await trio.sleep(0.05)
                        continue
                    if not await wakeup.wait(deadline):
                        raise LockTimeout(f"{self.path}: fewer than {self.num_clients} in time")
        finally:
            if not entered:
                await cleanup(self._delete_own)
                self.participating = False

    async def _delete_own(self) -> None:
        with contextlib.suppress(NoNodeError):
            await self.zk.delete(child(self.path, self.node))

    async def leave(self, timeout: float | None = None) -> None:
        """Leave and wait until every participant has left (LockTimeout after `timeout`)."""
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        zk = self.zk
        try:
            while True:
                check_usable(zk)
                with Wakeup(zk) as wakeup:
                    try:
                        step = await self._step(wakeup)
                    except RETRYABLE:
                        await trio.sleep(0.05)
                        continue
                    if step == "done":
                        break
                    if step == "wait" and not await wakeup.wait(deadline):
                        raise LockTimeout(f"{self.path}: participants still inside")
            await retry(zk, self._last_out)
        finally:
            self.participating = False

    async def _step(self, wakeup: Wakeup) -> str:
        """One round of the leave recipe: "done", "again" (re-check now) or "wait" (for the
        watch set on the participant we wait for)."""
        names = await self._participants()
        if not names or names == [self.node]:
            await self._delete_own()
            return "done"
        if names[0] == self.node:
            target = names[-1]  # the lowest waits for the highest to go
        else:
            await self._delete_own()  # the others go, then wait for the lowest
            target = names[0]
        there = await watch_existing(self.zk, child(self.path, target), wakeup)
        return "wait" if there else "again"

    async def _last_out(self) -> None:
        """Whoever sees nobody left deletes `ready`, opening the path for the next round."""
        try:
            if not await self._participants():
                await self.zk.delete(child(self.path, READY))
        except NoNodeError:
            pass

    async def __aenter__(self) -> DoubleBarrier:
        await self.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.leave()
        else:
            await cleanup(self._delete_own)
            self.participating = False
