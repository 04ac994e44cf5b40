"""What the recipes share: retrying idempotent calls across connection loss, waking up on a
watch or on any change of the session state, multi-op results, sequence numbers."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self, TypeVar

import trio

from controller.client.client import State, WatchedEvent, ZkClient
from controller.client.errors import (
    RETRYABLE,
    ConnectionLossError,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
    ZkException,
    error_for,
)
from controller.zk.constants import Err

T = TypeVar("T")

GONE_OR_RETRYABLE: tuple[type[ZkException], ...] = (*RETRYABLE, SessionExpiredError)
"""Errors a best-effort cleanup ignores: the connection, or the whole session, is gone."""

SEQUENCE_RE = re.compile(r"(\d{10})$")  # the 10-digit suffix of a sequential node


class Running:
    """A recipe used as `async with recipe:` (once at a time): subclasses define
    `_running()`, an async context manager that starts the recipe and yields it."""

    _cm: AbstractAsyncContextManager[Any] | None = None

    def _running(self) -> AbstractAsyncContextManager[Self]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        if self._cm is not None:
            raise RuntimeError(f"this {type(self).__name__} is already started")
        self._cm = self._running()
        entered: Self = await self._cm.__aenter__()
        return entered

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        cm, self._cm = self._cm, None
        assert cm is not None
        return await cm.__aexit__(exc_type, exc, tb)


class LockTimeout(TimeoutError):
    """A lock, semaphore lease or barrier was not obtained within the timeout (kazoo's name)."""


class LockLostError(Exception):
    """The lock (or lease, or leadership) may be gone: the session was suspended for too long,
    expired, or the node was deleted. Stop acting as its holder."""


def check_usable(zk: ZkClient) -> None:
    """Raise at once if the client can never talk to the quorum again."""
    if zk.state == State.LOST:
        raise SessionExpiredError()
    if zk.state == State.CLOSED:
        raise ConnectionLossError("client closed")


async def retry(zk: ZkClient, fn: Callable[[], Awaitable[T]], *, deadline: float = math.inf) -> T:
    """`await fn()` again after a connection loss or a timeout, until it answers, the session
    is lost (SessionExpiredError) or `deadline` (trio clock) passes (the last error). Only
    for calls that are safe to repeat: reads, deletes that tolerate NoNode, creates that
    tolerate NodeExists."""
    delay = 0.02
    while True:
        check_usable(zk)
        try:
            return await fn()
        except RETRYABLE:
            check_usable(zk)
            if trio.current_time() >= deadline:
                raise
            await trio.sleep(min(delay, max(0.0, deadline - trio.current_time())))
            delay = min(0.5, delay * 2)


async def ensure_path(zk: ZkClient, path: str) -> None:
    await retry(zk, lambda: zk.ensure_path(path))


async def create_if_missing(zk: ZkClient, path: str, value: bytes = b"") -> bool:
    """Create a persistent node (and its parents); False if it was already there."""

    async def attempt() -> bool:
        try:
            await zk.create(path, value, makepath=True)
        except NodeExistsError:
            return False
        return True

    return await retry(zk, attempt)


async def synced_children(zk: ZkClient, path: str) -> list[str]:
    """Children of `path` after a `sync`: the latest committed view, not a lagging replica's."""
    await zk.sync(path)
    return await zk.get_children(path)


def child(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def sequence_of(name: str) -> int | None:
    match = SEQUENCE_RE.search(name)
    return int(match.group(1)) if match else None


class Wakeup:
    """A trio.Event set by a watch (pass `wakeup.watch` as the callback) or by any change of
    the session state while the context is open: a waiter re-checks the tree after either.

        with Wakeup(zk) as wakeup:
            if await zk.exists(path, watch=wakeup.watch):
                await wakeup.wait(deadline)
    """

    def __init__(self, zk: ZkClient) -> None:
        self.zk = zk
        self.event = trio.Event()

    def watch(self, event: WatchedEvent) -> None:
        self.event.set()

    def _on_state(self, state: State) -> None:
        self.event.set()

    def __enter__(self) -> Wakeup:
        self.zk.add_listener(self._on_state)
        return self

    def __exit__(self, *exc: object) -> None:
        self.zk.remove_listener(self._on_state)

    async def wait(self, deadline: float = math.inf) -> bool:
        """Wait until woken (True) or the deadline passes (False)."""
        with trio.move_on_at(deadline):
            await self.event.wait()
        return self.event.is_set()


async def watch_existing(zk: ZkClient, path: str, wakeup: Wakeup) -> bool:
    """Set a watch on `path` if it exists (True); False if it does not (no watch is left
    behind, unlike `exists`, which would watch for a creation that never comes)."""
    try:
        await zk.get(path, watch=wakeup.watch)
    except NoNodeError:
        return False
    return True


def multi_error(results: Sequence[tuple[int, int, Any]]) -> int:
    """The error code of the op that failed a multi (0 when it succeeded)."""
    codes = [err for _, err, _ in results if err not in (0, Err.RUNTIMEINCONSISTENCY)]
    if codes:
        return codes[0]
    return Err.RUNTIMEINCONSISTENCY if any(err for _, err, _ in results) else 0


def raise_for_multi(results: Sequence[tuple[int, int, Any]]) -> None:
    """Raise the error of the op that failed a multi, if one did (nothing was applied)."""
    code = multi_error(results)
    if code:
        raise error_for(code, "multi-op failed")


async def cleanup(fn: Callable[[], Awaitable[object]], timeout: float = 5.0) -> None:
    """Best-effort cleanup that runs even in a cancelled scope, bounded in time; errors of a
    lost connection or session are ignored (ephemeral nodes go with the session)."""
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(timeout),
        contextlib.suppress(*GONE_OR_RETRYABLE),
    ):
        await fn()
