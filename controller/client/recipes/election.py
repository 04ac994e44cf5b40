"""Leader election that runs a coroutine while leader, kazoo's `Election` layout (which is
its `Lock`): a kazoo Election and this one on the same path elect one leader between them.

Layout: contenders are lock nodes `<path>/<uuid-hex>__lock__<seq>` holding the identifier;
the lowest sequence leads; `contenders()` lists identifiers in order (leader first).

    election = LeaderElection(zk, "/app/election", "node-1")
    await election.run(lead)                 # returns what lead() returns
    await election.run(lead, requeue=True)   # contend again after losing leadership

Guarantees: at most one contender runs its leader coroutine while its session is connected
(they hold the same lock). The coroutine is cancelled as soon as leadership may be lost: at
once when the connection breaks (`on_suspend=True`, the default, as Curator's LeaderSelector),
or once the claim is LOST (a session timeout later, or the session expired). `run` then raises
LeadershipLost, or contends again with `requeue=True` (until the session itself is lost:
SessionExpiredError). Leadership is released when the coroutine returns or fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from controller.client.client import ZkClient
from controller.client.recipes._common import LockLostError, check_usable
from controller.client.recipes.lock import Lock
from controller.client.recipes.ownership import Ownership

T = TypeVar("T")


class LeadershipLost(LockLostError):
    """The leader coroutine was cancelled because leadership may have been lost."""


class LeaderElection:
    """Runs a coroutine while this contender leads at `path` (kazoo's Election layout)."""

    def __init__(self, zk: ZkClient, path: str, identifier: str = "") -> None:
        self.zk = zk
        self.path = path
        self.identifier = identifier
        self.lock = Lock(zk, path, identifier)

    @property
    def ownership(self) -> Ownership | None:
        """The leadership claim while leader (fencing token: `ownership.token`)."""
        return self.lock.ownership

    @property
    def is_leader(self) -> bool:
        return self.lock.is_acquired

    async def run(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        on_suspend: bool = True,
        requeue: bool = False,
        timeout: float | None = None,
    ) -> T:
        """Wait to be elected (LockTimeout after `timeout`), then run `fn()` as leader and
        return its result. See the module docstring for what happens on connection loss."""
        while True:
            async with self.lock.hold(timeout) as held:
                with held.guard(on_suspend=on_suspend):
                    return await fn()
                why = held.state
            if not requeue:
                raise LeadershipLost(f"{self.path}: leadership {why} while leading")
            check_usable(self.zk)

    async def contenders(self) -> list[str]:
        """Identifiers of all contenders, the leader first."""
        return await self.lock.contenders()

    async def leader(self) -> str | None:
        contenders = await self.contenders()
        return contenders[0] if contenders else None
