"""What holding an ephemeral node means while the connection comes and goes.

A lock, a semaphore lease, a leadership, a taken queue item and a group membership are all an
ephemeral node that lives as long as the creator's session. The creator cannot know that for
sure at every instant, so an `Ownership` tells it honestly:

- HELD: connected, the session is alive, so the node is there.
- SUSPENDED: the connection broke. The session (and the node) may still be alive, or may have
  expired on the quorum and someone else may hold the lock already: do not act as the holder
  until reconnected. Becomes HELD again if the client reconnects within the session timeout
  with the same session.
- LOST: the session expired (the quorum deleted the node), or the connection stayed broken
  until the quorum may have expired the session (`lost_at`: the last time the client heard
  from a server plus the session timeout, less a margin, so never after the quorum could
  have given the node to someone else; Curator also assumes expiry then), or `verify()` or a
  fenced write found the node gone. Final.
- RELEASED: given up by its holder. Final.

`guard()` gives a cancel scope that is cancelled when the claim may be lost, and the fencing
token (the node's czxid, which grows with every new holder) lets a holder guard writes.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Sequence
from typing import Any

import trio

from controller.client.client import State, ZkClient
from controller.client.errors import NoNodeError
from controller.client.recipes._common import LockLostError, raise_for_multi, retry
from controller.zk.constants import Err, OpCode
from controller.zk.records import CheckVersionRequest, Stat


class OwnershipState(enum.StrEnum):
    """Held, suspended (connection lost, session may live), lost, or released."""

    HELD = "held"
    SUSPENDED = "suspended"
    LOST = "lost"
    RELEASED = "released"


_FINAL = (OwnershipState.LOST, OwnershipState.RELEASED)


class Ownership:
    """The claim that the ephemeral node `path` (created by this client) gives. See the module
    docstring. `token` is the node's czxid: a fencing token that strictly increases from one
    holder of a lock to the next."""

    def __init__(self, zk: ZkClient, path: str, stat: Stat) -> None:
        self.zk = zk
        self.path = path
        self.stat = stat
        self.token: int = stat.czxid
        self._state = OwnershipState.HELD
        self.lost_at = math.inf  # while SUSPENDED: when the claim counts as LOST
        self._changed = trio.Event()
        self._guards: list[_Guard] = []
        zk.add_listener(self._on_state)
        if zk.state != State.CONNECTED:
            self._on_state(zk.state)

    def __repr__(self) -> str:
        return f"Ownership({self.path!r}, token={self.token}, {self._state})"

    # ------------------------------------------------------------------ state

    @property
    def grace(self) -> float:
        """How long after the last contact with the quorum the claim counts as lost: the
        negotiated session timeout (the quorum expires a session silent that long) less a
        margin for the round trip and timer granularity."""
        timeout = self.zk.timeout_ms / 1000
        return timeout - max(0.1, 0.1 * timeout)

    @property
    def state(self) -> OwnershipState:
        self._check_timer()
        return self._state

    @property
    def held(self) -> bool:
        """True only while connected with the node's session alive."""
        return self.state == OwnershipState.HELD

    def ensure_held(self) -> None:
        """Raise LockLostError unless HELD."""
        state = self.state
        if state != OwnershipState.HELD:
            raise LockLostError(f"{self.path}: {state}")

    def _check_timer(self) -> None:
        expired = trio.current_time() >= self.lost_at
        if self._state == OwnershipState.SUSPENDED and expired:
            self._finish(OwnershipState.LOST)

    def _on_state(self, state: State) -> None:
        if self._state in _FINAL:
            return
        if state in (State.SUSPENDED, State.CONNECTING):
            if self._state == OwnershipState.HELD:
                now = trio.current_time()
                self.lost_at = min(now, self.zk.last_heard or now) + self.grace
                self._set(OwnershipState.SUSPENDED)
        elif state == State.CONNECTED:
            self._check_timer()
            if self._state == OwnershipState.SUSPENDED:
                self.lost_at = math.inf  # while SUSPENDED: when the claim counts as LOST
                self._set(OwnershipState.HELD)
        else:  # LOST (session expired) or CLOSED
            self._finish(OwnershipState.LOST)

    def _set(self, state: OwnershipState) -> None:
        self._state = state
        for guard in list(self._guards):
            guard.update()
        self._changed.set()
        self._changed = trio.Event()

    def _finish(self, state: OwnershipState) -> None:
        if self._state not in _FINAL:
            self._set(state)
        self.zk.remove_listener(self._on_state)

    def mark_lost(self) -> None:
        """The node is known to be gone."""
        self._finish(OwnershipState.LOST)

    def mark_released(self) -> None:
        self._finish(OwnershipState.RELEASED)

    async def wait_not_held(self, *, suspended: bool = True) -> OwnershipState:
        """Return the state as soon as the claim is LOST or RELEASED (or SUSPENDED, when
        `suspended`)."""
        while True:
            state = self.state
            if state in _FINAL or (suspended and state == OwnershipState.SUSPENDED):
                return state
            changed = self._changed
            with trio.move_on_at(self.lost_at):
                await changed.wait()

    def guard(self, *, on_suspend: bool = True) -> _Guard:
        """A `with` block cancelled as soon as the claim may be lost: at once when the
        connection breaks (`on_suspend`, the safe default), else once LOST (at the latest a
        session timeout after the connection broke). Yields the trio.CancelScope; after the
        block, `scope.cancelled_caught` and `state` say whether and why it was cut short.

            async with lock as held:
                with held.guard() as scope:
                    await do_work()
                if scope.cancelled_caught: ...
        """
        return _Guard(self, on_suspend)

    # ------------------------------------------------------------------ checks and fencing

    async def verify(self) -> bool:
        """Ask the quorum (after a sync) whether the node is still ours; False (and LOST)
        if it is gone. Call it after a suspension before trusting the claim again."""
        if self.state != OwnershipState.HELD:
            return False

        async def look() -> Stat | None:
            await self.zk.sync(self.path)
            return await self.zk.exists(self.path)

        stat = await retry(self.zk, look)
        if stat is None or stat.czxid != self.token:
            self.mark_lost()
            return False
        return self.state == OwnershipState.HELD

    def check_op(self) -> tuple[int, Any]:
        """A multi-op `check` that fails unless the node still exists: put it first in a
        multi to make the other ops conditional on still holding the claim."""
        return (OpCode.CHECK, CheckVersionRequest(self.path, -1))

    async def fenced(self, ops: Sequence[tuple[int, Any]]) -> list[tuple[int, int, Any]]:
        """Apply `ops` atomically only if the node still exists (the fencing check is part of
        the same multi, so there is no window). Raises LockLostError if it is gone (nothing
        applied), or the failing op's error; returns the results of `ops`."""
        self.ensure_held()
        results = await self.zk.multi([self.check_op(), *ops])
        if results and results[0][1] == Err.NONODE:
            self.mark_lost()
            raise LockLostError(f"{self.path}: node gone, nothing written")
        raise_for_multi(results)
        return results[1:]

    async def delete(self) -> None:
        """Delete the node (retrying across connection loss) and mark the claim RELEASED.
        With the session gone there is nothing to delete: the quorum did it."""

        async def attempt() -> None:
            with contextlib.suppress(NoNodeError):
                await self.zk.delete(self.path)

        try:
            if self.zk.state not in (State.LOST, State.CLOSED):
                await retry(self.zk, attempt)
        finally:
            self.mark_released()


class _Guard:
    """See `Ownership.guard`."""

    def __init__(self, owner: Ownership, on_suspend: bool) -> None:
        self.owner = owner
        self.on_suspend = on_suspend
        self.scope = trio.CancelScope()

    def update(self) -> None:
        state = self.owner._state
        if state in _FINAL or (state == OwnershipState.SUSPENDED and self.on_suspend):
            self.scope.cancel()
        elif state == OwnershipState.SUSPENDED:
            self.scope.deadline = self.owner.lost_at
        else:
            self.scope.deadline = math.inf

    def __enter__(self) -> trio.CancelScope:
        self.owner._guards.append(self)
        self.owner._check_timer()
        self.update()
        return self.scope.__enter__()

    def __exit__(self, *exc: Any) -> bool:
        try:
            return bool(self.scope.__exit__(*exc))
        finally:
            if self in self.owner._guards:
                self.owner._guards.remove(self)
