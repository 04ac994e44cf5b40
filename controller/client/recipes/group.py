"""Group membership, kazoo's `Party` layout: kazoo parties and these see the same members.

Layout: each member is an ephemeral node `<path>/<uuid-hex>__party__` holding its data
(kazoo: the identifier). Members are listed from the children containing `__party__`.

    group = GroupMembership(zk, "/app/workers", b"worker-1")
    async with group as membership:          # join; leave on exit
        async for members in group.watch():  # the member data, now and after every change
            ...

Guarantees: a member is listed exactly while its session lives (ephemeral node): a member
whose process dies or whose session expires disappears after the session timeout; a clean
leave removes it at once. The join is protected (GUID name: a lost reply is recognised), and
`membership` is an `Ownership` (SUSPENDED while disconnected, LOST once the session expired:
this member is no longer listed and must join again with a new client). `watch()` yields the
full member list again after every change, re-checking after a reconnect (changes missed
while disconnected are reported then).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from types import TracebackType

import trio

from controller.client.client import ZkClient
from controller.client.errors import RETRYABLE, NodeExistsError, NoNodeError
from controller.client.recipes._common import (
    Wakeup,
    check_usable,
    child,
    cleanup,
    ensure_path,
    retry,
)
from controller.client.recipes.ownership import Ownership
from controller.client.recipes.protected import protected_create

NODE_NAME = "__party__"


class GroupMembership:
    """Membership of the group at `path` (kazoo's Party layout)."""

    def __init__(self, zk: ZkClient, path: str, data: bytes | str = b"") -> None:
        self.zk = zk
        self.path = path.rstrip("/")
        self.data = data.encode() if isinstance(data, str) else data
        self.node = uuid.uuid4().hex + NODE_NAME
        self.membership: Ownership | None = None

    async def join(self) -> Ownership:
        """Join (idempotent while joined)."""
        if self.membership is not None and self.membership.held:
            return self.membership
        zk = self.zk
        await ensure_path(zk, self.path)
        with contextlib.suppress(NodeExistsError):
            await protected_create(zk, self.path, self.node, self.data, sequence=False)
        stat = await retry(zk, lambda: zk.exists(child(self.path, self.node)))
        if stat is None:  # deleted in between: try again
            return await self.join()
        self.membership = Ownership(zk, child(self.path, self.node), stat)
        return self.membership

    async def leave(self) -> bool:
        """Leave the group; False if not a member."""
        membership, self.membership = self.membership, None
        if membership is None:
            return False
        await membership.delete()
        return True

    async def member_nodes(self) -> dict[str, bytes]:
        """Node path -> data of every current member: a multi can `check` a member's node
        to make a write conditional on that member still being in the group."""

        async def attempt() -> dict[str, bytes]:
            await self.zk.sync(self.path)  # the latest view, as every other client's
            try:
                names = await self.zk.get_children(self.path)
            except NoNodeError:
                return {}
            result = {}
            for name in sorted(n for n in names if NODE_NAME in n):
                with contextlib.suppress(NoNodeError):
                    path = child(self.path, name)
                    result[path] = (await self.zk.get(path))[0]
            return result

        return await retry(self.zk, attempt)

    async def members(self) -> list[bytes]:
        """The data of every current member (sorted by node name), after a `sync`."""

        async def attempt() -> list[bytes]:
            await self.zk.sync(self.path)
            return await self._read_members()

        return await retry(self.zk, attempt)

    async def _read_members(self, wakeup: Wakeup | None = None) -> list[bytes]:
        zk = self.zk
        try:
            names = await zk.get_children(self.path, watch=wakeup.watch if wakeup else None)
        except NoNodeError:
            await ensure_path(zk, self.path)
            names = await zk.get_children(self.path, watch=wakeup.watch if wakeup else None)
        result = []
        for name in sorted(n for n in names if NODE_NAME in n):
            with contextlib.suppress(NoNodeError):
                result.append((await zk.get(child(self.path, name)))[0])
        return result

    async def watch(self) -> AsyncIterator[list[bytes]]:
        """The member list now, then again after every change (an async iterator; a list is
        not repeated when a reconnect shows no change)."""
        last: list[bytes] | None = None
        while True:
            check_usable(self.zk)
            with Wakeup(self.zk) as wakeup:
                try:
                    members = await self._read_members(wakeup)
                except RETRYABLE:
                    await trio.sleep(0.05)
                    continue
                if members != last:
                    last = members
                    yield members
                await wakeup.wait()

    async def __aenter__(self) -> Ownership:
        return await self.join()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await cleanup(self.leave)
