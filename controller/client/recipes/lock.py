"""A distributed lock, kazoo's `Lock` layout: a kazoo Lock and this one on the same path
exclude each other.

Layout: under the lock path, each contender creates an ephemeral sequential node
`<uuid-hex>__lock__<seq>` holding its identifier. The contender with the lowest sequence
number holds the lock; every other watches only its predecessor (the next lower sequence), so
a release wakes exactly one waiter (no herd effect) and waiters are served in FIFO order.

    lock = Lock(zk, "/locks/orders", identifier="worker-1")
    async with lock as held:                 # or: async with lock.hold(timeout=5) as held:
        with held.guard():                   # cancelled if the connection breaks
            await write_elsewhere(token=held.token)

Connection loss: the node is created with protection (see `protected.py`), so a create whose
reply was lost is found again, not duplicated. While waiting, connection loss is retried
within the session. Once acquired, `held` (an `Ownership`) says HELD / SUSPENDED / LOST; the
fencing token is the lock node's czxid, strictly increasing from one holder to the next.
A session expiry deletes the node: the lock is gone and the next waiter gets it.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from types import TracebackType

import trio

from controller.client.client import State, ZkClient
from controller.client.errors import RETRYABLE, NoNodeError, SessionExpiredError, ZkException
from controller.client.recipes._common import (
    LockTimeout,
    Wakeup,
    child,
    cleanup,
    ensure_path,
    retry,
)
from controller.client.recipes.ownership import Ownership, OwnershipState
from controller.client.recipes.protected import kazoo_prefix, protected_create

_NONODE_OR_RETRYABLE: tuple[type[ZkException], ...] = (NoNodeError, *RETRYABLE)


def _pattern(names: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(set(names)))
    return re.compile(rf"(?:{alternatives})(-?\d{{10}})$")


class Lock:
    """Exclusive, FIFO, not re-entrant. `acquire()` returns an `Ownership` (also stored as
    `ownership`); `async with lock as held` acquires without a timeout and releases on exit.
    `extra_lock_patterns` names other implementations' node names that count as contenders
    (e.g. "-lock-" for Curator's InterProcessMutex), as in kazoo."""

    NODE_NAME = "__lock__"
    EXCLUDE_NAMES: tuple[str, ...] = ("__lock__",)

    def __init__(
        self,
        zk: ZkClient,
        path: str,
        identifier: str = "",
        *,
        extra_lock_patterns: Iterable[str] = (),
    ) -> None:
        self.zk = zk
        self.path = path.rstrip("/") or "/"
        self.identifier = identifier
        self.data = identifier.encode()
        excludes = {*self.EXCLUDE_NAMES, *extra_lock_patterns}
        self._blockers = _pattern(excludes)
        self._contenders = _pattern({*excludes, self.NODE_NAME})
        self.prefix = ""
        self.node: str | None = None
        self.ownership: Ownership | None = None
        self._stale: list[str] = []  # prefixes of our nodes still to delete

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, {self.identifier!r})"

    @property
    def is_acquired(self) -> bool:
        return self.ownership is not None and self.ownership.held

    async def acquire(
        self, timeout: float | None = None, *, blocking: bool = True
    ) -> Ownership | None:
        """Wait for the lock (at most `timeout` seconds: LockTimeout). Non-blocking: None if
        another contender holds it. On timeout, cancellation or error our node is removed."""
        if self.ownership is not None and self.ownership.state in (
            OwnershipState.HELD,
            OwnershipState.SUSPENDED,
        ):
            raise RuntimeError(f"{self!r} is already held (locks are not re-entrant)")
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        acquired: Ownership | None = None
        try:
            with trio.move_on_at(deadline) as scope:
                if self._stale:  # an earlier release did not finish: never block behind it
                    await retry(self.zk, self._delete_stale)
                self.prefix = kazoo_prefix(self.NODE_NAME)
                acquired = await self._acquire(blocking)
            if acquired is None and scope.cancelled_caught:
                raise LockTimeout(f"{self.path}: lock not acquired within {timeout:g} s")
            self.ownership = acquired
            return acquired
        finally:
            if acquired is None:
                self._forget_node()
                await cleanup(self._delete_stale)

    async def _acquire(self, blocking: bool) -> Ownership | None:
        zk = self.zk
        await ensure_path(zk, self.path)
        node = await protected_create(zk, self.path, self.prefix, self.data)
        self.node = node
        while True:
            children = await retry(zk, lambda: zk.get_children(self.path))
            if node not in children:  # deleted under us (by hand): contend again
                node = await protected_create(zk, self.path, self.prefix, self.data)
                self.node = node
                continue
            predecessor = self._predecessor(node, children)
            if predecessor is None:
                mine = child(self.path, node)
                stat = await retry(zk, functools.partial(zk.exists, mine))
                if stat is not None:
                    return Ownership(zk, mine, stat)
                continue
            if not blocking:
                return None
            with Wakeup(zk) as wakeup:
                try:
                    await zk.get(child(self.path, predecessor), watch=wakeup.watch)
                except _NONODE_OR_RETRYABLE:
                    continue  # gone already, or re-check once reconnected
                await wakeup.wait()

    def _predecessor(self, node: str, children: list[str]) -> str | None:
        """The blocking contender just before `node` (kazoo's `_get_predecessor`)."""
        own = self._contenders.search(node)
        assert own is not None, node
        mine = int(own.group(1))
        best: tuple[int, str] | None = None
        for name in children:
            match = self._blockers.search(name)
            if match is None:
                continue
            seq = int(match.group(1))
            if seq < mine and (best is None or seq > best[0]):
                best = (seq, name)
        return best[1] if best else None

    def _forget_node(self) -> None:
        if self.prefix and self.prefix not in self._stale:
            self._stale.append(self.prefix)
        self.prefix = ""
        self.node = None

    async def _delete_stale(self) -> None:
        """Delete every node of ours that is no longer wanted (a duplicate from a lost reply
        included); a prefix is forgotten only once its nodes are gone."""
        if not self._stale:
            return
        try:
            children = await self.zk.get_children(self.path)
        except NoNodeError:
            children = []
        prefixes = tuple(self._stale)
        for name in children:
            if name.startswith(prefixes):
                with suppress(NoNodeError):
                    await self.zk.delete(child(self.path, name))
        del self._stale[: len(prefixes)]

    async def release(self) -> bool:
        """Give the lock up (delete our node); False if it was not held. After a session
        expiry there is nothing left to delete and this just returns."""
        owner, self.ownership = self.ownership, None
        if owner is None:
            return False
        self._forget_node()
        try:
            if self.zk.state in (State.LOST, State.CLOSED):
                self._stale.clear()  # the session's ephemerals are gone with it
            else:
                await retry(self.zk, self._delete_stale)
        except SessionExpiredError:
            self._stale.clear()
        finally:
            owner.mark_released()
        return True

    async def contenders(self) -> list[str]:
        """Identifiers of every contender (kazoo `__lock__`/`__rlock__` ones and the extra
        patterns), in lock order: the first holds the lock. Read after a `sync`, so every client
        asking after a change sees it."""

        async def listing() -> list[str]:
            await self.zk.sync(self.path)  # the latest view, as every other client's
            try:
                return await self.zk.get_children(self.path)
            except NoNodeError:
                return []

        children = await retry(self.zk, listing)
        ordered: list[tuple[int, str]] = []
        for name in children:
            match = self._contenders.search(name)
            if match is not None:
                ordered.append((int(match.group(1)), name))
        result: list[str] = []
        for _, name in sorted(ordered):

            async def read(name: str = name) -> bytes | None:
                try:
                    return (await self.zk.get(child(self.path, name)))[0]
                except NoNodeError:
                    return None

            data = await retry(self.zk, read)
            if data is not None:
                result.append(data.decode("utf-8", "replace"))
        return result

    @asynccontextmanager
    async def hold(self, timeout: float | None = None) -> AsyncIterator[Ownership]:
        """`async with lock.hold(timeout=5) as held:` acquire (LockTimeout), release on exit
        (even when cancelled)."""
        owner = await self.acquire(timeout)
        assert owner is not None
        try:
            yield owner
        finally:
            await cleanup(self.release, self._release_timeout())

    async def __aenter__(self) -> Ownership:
        owner = await self.acquire()
        assert owner is not None
        return owner

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await cleanup(self.release, self._release_timeout())

    def _release_timeout(self) -> float:
        """A release shielded from cancellation still gives up after this long (two session
        timeouts); the next `acquire` of this object deletes the leftover node first."""
        return max(5.0, 2 * self.zk.timeout_ms / 1000)
