"""A shared read / exclusive write lock, kazoo's `ReadLock`/`WriteLock` layout.

Layout: one directory for both sides. Readers create `<uuid-hex>__rlock__<seq>`, writers
`<uuid-hex>__lock__<seq>` (ephemeral sequential, identifier as data). A reader waits only for
the closest lower *writer* node; a writer waits for the closest lower node of either kind.
So readers share the lock, a writer excludes everyone, and a waiting writer blocks the readers
that come after it (no writer starvation). A plain `Lock` on the same path behaves as a writer.

    rw = ReadWriteLock(zk, "/locks/catalog", identifier="svc-1")
    async with rw.read_lock() as held: ...
    async with rw.write_lock().hold(timeout=5) as held: ...

Connection loss and expiry: as `Lock` (protected creation, `Ownership`, fencing token).
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.client.client import ZkClient
from controller.client.recipes.lock import Lock


class ReadLock(Lock):
    """The read side: blocked only by writers."""

    NODE_NAME = "__rlock__"
    EXCLUDE_NAMES = ("__lock__",)


class WriteLock(Lock):
    """The write side: blocked by readers and writers."""

    NODE_NAME = "__lock__"
    EXCLUDE_NAMES = ("__lock__", "__rlock__")


class ReadWriteLock:
    """Makes the read and write locks of one path; each call returns a new (non re-entrant)
    lock object, one per holder."""

    def __init__(
        self,
        zk: ZkClient,
        path: str,
        identifier: str = "",
        *,
        extra_lock_patterns: Iterable[str] = (),
    ) -> None:
        self.zk = zk
        self.path = path
        self.identifier = identifier
        self.extra_lock_patterns = tuple(extra_lock_patterns)

    def read_lock(self, identifier: str | None = None) -> ReadLock:
        return ReadLock(
            self.zk,
            self.path,
            self.identifier if identifier is None else identifier,
            extra_lock_patterns=self.extra_lock_patterns,
        )

    def write_lock(self, identifier: str | None = None) -> WriteLock:
        return WriteLock(
            self.zk,
            self.path,
            self.identifier if identifier is None else identifier,
            extra_lock_patterns=self.extra_lock_patterns,
        )

    async def contenders(self) -> list[str]:
        """Identifiers of every reader and writer in order."""
        return await self.write_lock().contenders()
