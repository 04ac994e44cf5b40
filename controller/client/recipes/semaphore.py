"""A counting semaphore of N leases, kazoo's `Semaphore` layout: kazoo semaphores and these
share the same leases.

Layout: the semaphore node `<path>` holds the lease count as decimal text (checked against
`max_leases` on first use, ValueError if it differs). Each lease is an ephemeral child
`<path>/<uuid-hex>` holding the holder's identifier. Acquirers serialise through a `Lock` at
`<path>-__lock__`; only that lock's holder watches the lease children, waiting for a free lease
(no herd effect), creates its lease and releases the lock.

    async with Semaphore(zk, "/sem/db", max_leases=3, identifier="w1") as lease:
        ...                                   # lease: an Ownership of the lease node

Connection loss: the lease node has a GUID name, so a lost reply is recognised (NodeExists is
ours). A lease is an `Ownership`: SUSPENDED while disconnected, LOST when the session expires
(the quorum then deletes the lease and a waiter gets it).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
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
    retry,
)
from controller.client.recipes.lock import Lock
from controller.client.recipes.ownership import Ownership
from controller.client.recipes.protected import protected_create


class Semaphore:
    """`max_leases` holders at a time. Not re-entrant: one lease per object."""

    def __init__(
        self, zk: ZkClient, path: str, identifier: str = "", *, max_leases: int = 1
    ) -> None:
        if max_leases < 1:
            raise ValueError("max_leases must be at least 1")
        self.zk = zk
        self.path = path.rstrip("/")
        self.identifier = identifier
        self.data = identifier.encode()
        self.max_leases = max_leases
        self.lock_path = self.path + "-__lock__"
        self.node = uuid.uuid4().hex
        self.lease: Ownership | None = None
        self._checked = False

    async def _ensure_node(self) -> None:
        if self._checked:
            return

        async def attempt() -> bytes | None:
            try:
                await self.zk.create(self.path, str(self.max_leases).encode(), makepath=True)
                return None
            except NodeExistsError:
                return (await self.zk.get(self.path))[0]

        data = await retry(self.zk, attempt)
        if data is not None:
            try:
                leases = int(data.decode())
            except ValueError:
                leases = None  # not a count: the node's data serves another purpose
            if leases is not None and leases != self.max_leases:
                raise ValueError(
                    f"{self.path}: inconsistent max leases: {leases}, expected {self.max_leases}"
                )
        self._checked = True

    async def acquire(self, timeout: float | None = None) -> Ownership:
        """Wait for a lease (LockTimeout after `timeout` seconds)."""
        if self.lease is not None and self.lease.held:
            raise RuntimeError(f"{self.path}: this Semaphore already holds a lease")
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        await self._ensure_node()
        lease: Ownership | None = None
        try:
            with trio.move_on_at(deadline):
                lease = await self._acquire(deadline)
            if lease is None:
                raise LockTimeout(f"{self.path}: no lease within {timeout:g} s")
            self.lease = lease
            return lease
        finally:
            if lease is None:
                await cleanup(self._delete_lease)

    async def _acquire(self, deadline: float) -> Ownership:
        zk = self.zk
        async with Lock(zk, self.lock_path, self.identifier).hold(
            None if math.isinf(deadline) else max(0.0, deadline - trio.current_time())
        ):
            while True:
                check_usable(zk)
                with Wakeup(zk) as wakeup:
                    try:
                        children = await zk.get_children(self.path, watch=wakeup.watch)
                    except RETRYABLE:
                        continue
                    if self.node in children or len(children) < self.max_leases:
                        await protected_create(zk, self.path, self.node, self.data, sequence=False)
                        stat = await retry(zk, lambda: zk.exists(child(self.path, self.node)))
                        if stat is not None:
                            return Ownership(zk, child(self.path, self.node), stat)
                        continue
                    await wakeup.wait()

    async def _delete_lease(self) -> None:
        with suppress(NoNodeError):
            await self.zk.delete(child(self.path, self.node))

    async def release(self) -> bool:
        """Give the lease back; False if none was held."""
        lease, self.lease = self.lease, None
        if lease is None:
            return False
        await lease.delete()
        return True

    async def lease_holders(self) -> list[str]:
        """Identifiers of the current lease holders (unordered, as kazoo)."""

        async def attempt() -> list[str]:
            await self.zk.sync(self.path)  # the latest view, as every other client's
            try:
                names = await self.zk.get_children(self.path)
            except NoNodeError:
                return []
            holders = []
            for name in names:
                with suppress(NoNodeError):
                    holders.append((await self.zk.get(child(self.path, name)))[0].decode())
            return holders

        return await retry(self.zk, attempt)

    @asynccontextmanager
    async def hold(self, timeout: float | None = None) -> AsyncIterator[Ownership]:
        lease = await self.acquire(timeout)
        try:
            yield lease
        finally:
            await cleanup(self.release)

    async def __aenter__(self) -> Ownership:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await cleanup(self.release)
