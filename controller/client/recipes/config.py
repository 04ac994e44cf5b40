"""A typed configuration value read from one znode and kept current live.

Layout: the node `<path>` holds JSON (or anything `decode` parses) that cattrs structures
into `type_` (an attrs class, a dataclass, a dict type...). Write it with `kraft zk set
<path> '{"interval": 0.5}'`, kazoo, or `ConfigWatch.write`.

    @attrs.frozen
    class Settings:
        greeting: str = "hello"
        interval: float = 1.0

    async with ConfigWatch(zk, "/app/config", Settings, default=Settings()) as config:
        print(config.value.greeting)
        async for settings in config.updates():    # now, then after every change
            ...

Guarantees: `value` is the latest *valid* configuration this client has seen; a payload that
does not parse or does not fit the type is refused (`error` says why) and the last good
value is kept. Changes are seen in order, but quick successive changes may be coalesced
(latest-value semantics). After a reconnect the node is read again, so a change made while
disconnected is picked up. A deleted node gives `default` (or keeps the last value if there
is no default). `updates()` yields a value once per change of the node.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import cattrs
import trio

from controller.client.client import State, ZkClient
from controller.client.errors import RETRYABLE, NoNodeError, SessionExpiredError
from controller.client.recipes._common import Running, Wakeup, check_usable, create_if_missing

T = TypeVar("T")


def _describe(exc: Exception) -> str:
    """One line: cattrs' own per-field messages when it is a structuring error."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))
    return f"{type(exc).__name__}: {exc}"


class ConfigWatch(Running, Generic[T]):
    """A typed configuration value kept live from the znode at `path` (see the module
    docstring). `async with` reads the node once (so `value` is set if valid) and keeps
    watching it until the block ends."""

    def __init__(
        self,
        zk: ZkClient,
        path: str,
        type_: type[T],
        *,
        default: T | None = None,
        converter: cattrs.Converter | None = None,
        decode: Callable[[bytes], Any] = json.loads,
        encode: Callable[[Any], bytes] = lambda obj: json.dumps(obj).encode(),
    ) -> None:
        self.zk = zk
        self.path = path
        self.type = type_
        self.default = default
        self.converter = converter or cattrs.Converter()
        self.decode = decode
        self.encode = encode
        self.version = -1  # of the node the value came from; -1: node missing
        self.error: str | None = None
        self.lost = False
        self._value: T | None = default
        self._has_value = default is not None
        self._generation = 0
        self._seen_mzxid: int | None = None
        self._changed = trio.Event()

    @property
    def value(self) -> T:
        """The current configuration (LookupError if none was ever valid and no default)."""
        if not self._has_value:
            raise LookupError(f"{self.path}: no valid configuration yet ({self.error})")
        assert self._value is not None
        return self._value

    def parse(self, data: bytes) -> T:
        return self.converter.structure(self.decode(data), self.type)

    async def write(self, value: T, version: int = -1) -> None:
        """Store `value` (unstructured with the converter, encoded); `version` for a CAS."""
        data = self.encode(self.converter.unstructure(value))
        if not await create_if_missing(self.zk, self.path, data):
            await self.zk.set(self.path, data, version)

    def _notify(self) -> None:
        self._generation += 1
        self._changed.set()
        self._changed = trio.Event()

    def _apply(self, data: bytes | None, mzxid: int | None, version: int) -> None:
        if mzxid is not None and mzxid == self._seen_mzxid:
            return
        self._seen_mzxid = mzxid
        if data is None:  # node missing
            self.version = -1
            if self.default is not None and (self._value != self.default or not self._has_value):
                self._value, self._has_value, self.error = self.default, True, None
                self._notify()
            return
        try:
            value = self.parse(data)
        except Exception as exc:  # bad JSON, or not the right shape for the type
            self.error = _describe(exc)
            self._changed.set()
            self._changed = trio.Event()
            return
        self.version, self.error = version, None
        if not self._has_value or value != self._value:
            self._value, self._has_value = value, True
            self._notify()

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        zk = self.zk
        started = False
        while True:
            if zk.state in (State.LOST, State.CLOSED) and started:
                self.lost = True  # keep the last value; updates() ends
                self._changed.set()
                return
            check_usable(zk)
            with Wakeup(zk) as wakeup:
                try:
                    try:
                        data, stat = await zk.get(self.path, watch=wakeup.watch)
                        self._apply(data, stat.mzxid, stat.version)
                    except NoNodeError:
                        if await zk.exists(self.path, watch=wakeup.watch) is not None:
                            continue  # created meanwhile: read it
                        self._apply(None, None, -1)
                except RETRYABLE:
                    await trio.sleep(0.05)
                    continue
                except SessionExpiredError:
                    if not started:
                        raise
                    continue
                if not started:
                    task_status.started()
                    started = True
                await wakeup.wait()

    async def updates(self) -> AsyncIterator[T]:
        """The current value (once there is one), then each new value."""
        seen = -1
        while True:
            if self.lost:
                raise SessionExpiredError(f"{self.path}: no more updates (session lost)")
            changed = self._changed
            if self._has_value and self._generation != seen:
                seen = self._generation
                yield self.value
                continue
            await changed.wait()

    async def wait_for(self, predicate: Callable[[T], bool], timeout: float | None = None) -> T:
        """Wait until the value satisfies `predicate` (trio.TooSlowError after `timeout`)."""
        with trio.fail_after(math.inf if timeout is None else timeout):
            while True:
                if self.lost:
                    raise SessionExpiredError(f"{self.path}: no more updates (session lost)")
                changed = self._changed
                if self._has_value and predicate(self.value):
                    return self.value
                await changed.wait()

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[ConfigWatch[T]]:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._run)
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()
