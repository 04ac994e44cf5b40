"""A shared counter updated by compare-and-set on the node's version, in kazoo's `Counter`
layout (value as ASCII `repr`, e.g. b"42" or b"1.5") or, with `curator=True`, Curator's
`SharedCount` layout (a 4-byte big-endian signed int).

    counter = Counter(zk, "/app/hits")
    pre, post = await counter.add(1)
    value, version = await counter.get_versioned()
    ok = await counter.try_set(10, version)        # CAS: False if someone changed it

Guarantees: every `add` is applied exactly once or raises: it reads value and version, writes
with `set(version=...)` and retries on BadVersion, so concurrent adds never overwrite each
other. On a connection loss during the write the outcome is unknown; the counter syncs and
re-reads: still at the version it read means the write did not apply (retried); changed
means it may have been ours or another client's, which cannot be told apart, so it raises
ConnectionLossError rather than risk counting twice.
"""

from __future__ import annotations

import struct
from typing import Generic, TypeVar

from controller.client.client import ZkClient
from controller.client.errors import RETRYABLE, BadVersionError, ConnectionLossError
from controller.client.recipes._common import create_if_missing, retry

N = TypeVar("N", int, float)


class Counter(Generic[N]):
    """A counter at `path` updated by compare-and-set on the node version (layouts: see
    the module docstring)."""

    def __init__(self, zk: ZkClient, path: str, default: N = 0, *, curator: bool = False) -> None:
        if curator and not isinstance(default, int):
            raise TypeError("a Curator SharedCount holds an int")
        self.zk = zk
        self.path = path
        self.default: N = default
        self.curator = curator
        self._ensured = False

    def _decode(self, data: bytes) -> N:
        if not data:
            return self.default
        if self.curator:
            return type(self.default)(struct.unpack(">i", data)[0])
        return type(self.default)(data.decode("ascii"))

    def _encode(self, value: N) -> bytes:
        if self.curator:
            return struct.pack(">i", value)
        return repr(value).encode("ascii")

    async def _ensure(self) -> None:
        if not self._ensured:
            seed = self._encode(self.default) if self.curator else b""  # kazoo: empty = default
            await create_if_missing(self.zk, self.path, seed)
            self._ensured = True

    async def get_versioned(self) -> tuple[N, int]:
        """(value, node version): pass the version to `try_set`."""
        await self._ensure()
        data, stat = await retry(self.zk, lambda: self.zk.get(self.path))
        return self._decode(data), stat.version

    async def get(self) -> N:
        return (await self.get_versioned())[0]

    async def try_set(self, value: N, version: int) -> bool:
        """Set `value` only if the node is still at `version` (False otherwise).
        ConnectionLossError: outcome unknown (see the module docstring)."""
        await self._ensure()
        try:
            await self.zk.set(self.path, self._encode(value), version)
            return True
        except BadVersionError:
            return False
        except RETRYABLE:
            if await self._unchanged(version):
                return await self.try_set(value, version)
            raise ConnectionLossError(f"{self.path}: the write's outcome is unknown") from None

    async def _unchanged(self, version: int) -> bool:
        async def read() -> int:
            await self.zk.sync(self.path)
            return (await self.zk.get(self.path))[1].version

        return await retry(self.zk, read) == version

    async def add(self, delta: N) -> tuple[N, N]:
        """Add `delta` atomically; returns (value before, value after)."""
        if not isinstance(delta, type(self.default)):
            raise TypeError("invalid type for the counter's change")
        while True:
            pre, version = await self.get_versioned()
            post: N = pre + delta
            if await self.try_set(post, version):
                return pre, post

    async def subtract(self, delta: N) -> tuple[N, N]:
        return await self.add(-delta)
