"""The demo broker process: the trio shell around `MetadataCache`.

One session at a time (a new one, with a new broker epoch, if the old one expires):

1. ensure `/brokers/ids` and `/admin/controlled_shutdown` exist;
2. register: one multi `[create(/brokers/ids/<id>, EPHEMERAL), setData(json, version 0)]` as
   Kafka's `registerBroker` does; the broker epoch is the znode's czxid. A node owned by
   another session is waited on until the registration timeout (the previous incarnation's
   session may still be expiring), then registration fails (DuplicateBrokerRegistration);
3. follow: persistent recursive watches on `/brokers/topics` and `/brokers/ids` mark paths
   dirty; one task re-reads them (getData: the stat's mzxid is the zxid the data reflects)
   and feeds the cache, printing each change; after (re)connecting it re-reads everything;
4. on SIGTERM/SIGINT: controlled shutdown (the ephemeral `/admin/controlled_shutdown/<id>`,
   then wait until the cache shows it leads nothing), then close the session, which removes
   the registration. A second signal skips the wait.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import trio

from broker_demo.cache import Change, MetadataCache, hex_zxid
from broker_demo.status import serve_status
from controller.client import State, WatchedEvent, ZkClient, open_client
from controller.client.errors import (
    RETRYABLE,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
    ZkException,
    describe,
)
from controller.metadata import records as r
from controller.metadata.image import ZnodeView
from controller.metadata.ops import CreateOp, SetDataOp, TreeOp
from controller.metadata_client import OpFailed, apply_ops, first_leaf, new_uuid, read_nodes
from controller.zk.constants import Err

DEFAULT_SESSION_TIMEOUT_MS = 6000
REGISTRATION_GRACE_MS = 2000  # default registration timeout: session timeout + this
DEFAULT_SHUTDOWN_TIMEOUT_MS = 15000


@attrs.frozen
class BrokerConfig:
    """Command-line settings of one demo broker."""

    broker_id: int
    bootstrap: str
    host: str = "127.0.0.1"
    port: int = 0  # 0: chosen by the OS (the registration carries the real port)
    rack: str | None = None
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    registration_timeout_ms: int | None = None  # None: session timeout + 2 s
    shutdown_timeout_ms: int = DEFAULT_SHUTDOWN_TIMEOUT_MS

    @property
    def registration_timeout_s(self) -> float:
        ms = self.registration_timeout_ms
        return (self.session_timeout_ms + REGISTRATION_GRACE_MS if ms is None else ms) / 1000


class RegistrationError(Exception):
    """The broker id is held by another live session (Kafka's
    DuplicateBrokerRegistrationException), or registering failed otherwise."""

    def __init__(self, message: str, kind: str = "DuplicateBrokerRegistration") -> None:
        super().__init__(message)
        self.kind = kind


def hex_session(session_id: int) -> str:
    """A session id as ZooKeeper prints it (unsigned hex)."""
    return f"0x{session_id & (2**64 - 1):x}"


def _out(line: str) -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _interesting(path: str) -> bool:
    parts = path.split("/")[1:]
    if len(parts) == 3:
        return parts[1] in ("ids", "topics")
    return len(parts) == 6 and parts[3] == "partitions" and parts[5] == "state"


class Broker:
    """A demo broker (see the module docstring). `run()` returns the exit code."""

    def __init__(
        self,
        config: BrokerConfig,
        out: Callable[[str], None] = _out,
        err: Callable[[str], None] = _err,
    ) -> None:
        self.config = config
        self.out = out
        self.err = err
        self.name = f"broker {config.broker_id}"
        self.cache = MetadataCache(config.broker_id)
        self.incarnation_id = new_uuid()
        self.port = config.port
        self.epoch: int | None = None
        self.session_id = 0
        self.state = "starting"
        self._stop = trio.Event()
        self._interrupt = trio.Event()  # stop requested or session lost
        self._force = False
        self._lost = False
        self._wake = trio.Event()
        self._changed = trio.Event()
        self._dirty: set[str] = set()
        self._resync = True

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        cfg = self.config
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            try:
                listeners = await trio.open_tcp_listeners(cfg.port, host=cfg.host)
            except OSError as exc:
                self.err(f"error: {self.name}: cannot listen on {cfg.host}:{cfg.port}: {exc}")
                return 1
            for extra in listeners[1:]:
                await extra.aclose()
            listener = listeners[0]
            self.port = listener.socket.getsockname()[1]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._signals, signals)
                serve = partial(serve_status, status=self.status)
                nursery.start_soon(trio.serve_listeners, serve, [listener])
                code = await self._sessions()
                nursery.cancel_scope.cancel()
        self.state = "stopped"
        if code == 0:
            self.out(f"{self.name}: stopped")
        return code

    async def _signals(self, signals: Any) -> None:
        async for _signum in signals:
            if self._stop.is_set():
                self._force = True  # a second signal: stop without waiting
            self._stop.set()
            self._interrupt.set()
            self._notify()

    async def _sessions(self) -> int:
        first = True
        while not self._stop.is_set():
            try:
                async with open_client(self.config.bootstrap, self.config.session_timeout_ms) as zk:
                    code = await self._session(zk)
            except (ZkException, BaseExceptionGroup) as exc:
                leaf = first_leaf(exc)
                if not isinstance(leaf, ZkException):
                    raise
                if first and self.epoch is None:
                    where = self.config.bootstrap
                    self.err(f"error: {self.name}: {describe(leaf, f'controllers {where}')}")
                    return 1
                self.out(f"{self.name}: {describe(leaf)}; connecting again")
                await trio.sleep(0.5)
                continue
            first = False
            if code is not None:
                return code
            self.out(f"{self.name}: session expired (registration lost); registering again")
        return 0

    async def _session(self, zk: ZkClient) -> int | None:
        """Register and follow until stopped (0), refused (1) or the session is lost (None)."""
        self.session_id = zk.session_id
        self.state = "registering"
        for path in (r.BROKER_IDS, r.CONTROLLED_SHUTDOWN):
            await zk.retry(zk.ensure_path, path)
        try:
            epoch = await self._register(zk)
        except RegistrationError as exc:
            self.err(f"error: {self.name}: {exc.kind}: {exc}")
            return 1
        if epoch is None:
            return 0  # stopped while waiting to register
        self.epoch = epoch
        self.state = "running"
        self.out(
            f"{self.name}: registered as PLAINTEXT://{self.config.host}:{self.port} "
            f"with epoch {epoch} ({hex_zxid(epoch)}), session {hex_session(zk.session_id)}"
        )
        self._lost = False
        self._resync = True
        self._dirty.clear()
        zk.add_listener(self._on_state)
        await zk.retry(zk.add_persistent_watch, r.BROKER_TOPICS, self._on_event)
        await zk.retry(zk.add_persistent_watch, r.BROKER_IDS, self._on_event)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._follow, zk)
            await self._interrupt.wait()
            if not self._lost:
                await self._controlled_shutdown(zk)
            nursery.cancel_scope.cancel()
        if self._lost and not self._stop.is_set():
            self._interrupt = trio.Event()
            self.epoch = None
            return None
        return 0

    # ------------------------------------------------------------------ registration

    async def _register(self, zk: ZkClient) -> int | None:
        cfg = self.config
        path = r.broker_path(cfg.broker_id)
        registration = r.BrokerRegistration(
            host=cfg.host,
            port=self.port,
            endpoints=[f"PLAINTEXT://{cfg.host}:{self.port}"],
            rack=cfg.rack,
            timestamp=str(int(time.time() * 1000)),
            incarnation_id=self.incarnation_id,
        )
        ops: list[TreeOp] = [
            CreateOp(path, b"", ephemeral=True),
            SetDataOp(path, r.encode(registration), 0),
        ]
        timeout = cfg.registration_timeout_s
        deadline = trio.current_time() + timeout
        told = False
        while not self._stop.is_set():
            try:
                results = await apply_ops(zk, ops)
                stat = getattr(results[1][2], "stat", None)
                if stat is not None:
                    return int(stat.czxid)
            except OpFailed as exc:
                if exc.code != Err.NODEEXISTS:
                    raise RegistrationError(str(exc), "RegistrationFailed") from None
            except RETRYABLE:
                await trio.sleep(0.1)  # did it land? the check below tells
            stat = await zk.retry(zk.exists, path)
            if stat is None:
                continue
            owner = stat.ephemeral_owner
            if owner == zk.session_id:
                return int(stat.czxid)  # ours: an earlier attempt landed before a reconnect
            holder = (
                f"another live session ({hex_session(owner)})" if owner else "a persistent znode"
            )
            if trio.current_time() >= deadline:
                raise RegistrationError(f"broker id {cfg.broker_id} is registered by {holder}")
            if not told:
                told = True
                self.out(
                    f"{self.name}: broker id {cfg.broker_id} is registered by {holder}; "
                    f"waiting up to {timeout:g} s for it to go away"
                )
            with trio.move_on_at(min(deadline, trio.current_time() + 0.25)):
                await self._stop.wait()
        return None

    # ------------------------------------------------------------------ following metadata

    def _on_event(self, event: WatchedEvent) -> None:
        if _interesting(event.path):
            self._dirty.add(event.path)
            self._wake.set()

    def _on_state(self, state: State) -> None:
        if state == State.CONNECTED:
            self._resync = True  # notifications may have been missed while disconnected
        self._wake.set()

    async def _follow(self, zk: ZkClient) -> None:
        while True:
            self._wake = trio.Event()
            if zk.state in (State.LOST, State.CLOSED):
                self._lost = True
                self._interrupt.set()
                self._notify()
                return
            if zk.state == State.CONNECTED and (self._resync or self._dirty):
                try:
                    changes = await self._sync_round(zk)
                except SessionExpiredError:
                    continue
                except RETRYABLE:
                    self._resync = True
                    await trio.sleep(0.05)
                    continue
                self._publish(changes)
                continue
            await self._wake.wait()

    async def _sync_round(self, zk: ZkClient) -> list[Change]:
        if self._resync:
            self._resync = False
            self._dirty.clear()
            await zk.sync("/")
            start = zk.last_zxid
            nodes = await read_nodes(zk, (r.BROKER_IDS, r.BROKER_TOPICS), sync=False)
            return self.cache.resync(nodes, start)
        paths, self._dirty = self._dirty, set()
        found: dict[str, tuple[ZnodeView | None, int]] = {}

        async def read(path: str) -> None:
            try:
                data, stat = await zk.get(path)
            except NoNodeError:
                found[path] = (None, zk.last_zxid)
                return
            view = ZnodeView(data, stat.version, stat.czxid, stat.mzxid, stat.ephemeral_owner)
            found[path] = (view, stat.mzxid)

        try:
            async with trio.open_nursery() as nursery:
                for path in paths:
                    nursery.start_soon(read, path)
        except BaseExceptionGroup as group:
            leaf = first_leaf(group)
            if isinstance(leaf, ZkException):
                raise leaf from None
            raise
        changes: list[Change] = []
        for path in sorted(found, key=lambda p: (p.count("/"), p)):  # parents first
            node, zxid = found[path]
            changes += self.cache.observe(path, node, zxid)
        return changes

    def _publish(self, changes: list[Change]) -> None:
        for change in changes:
            self.out(change.describe(self.config.broker_id))
        self._notify()

    def _notify(self) -> None:
        """Wake whoever waits for the cache (or the stop/lost flags) to change."""
        self._changed.set()
        self._changed = trio.Event()

    # ------------------------------------------------------------------ controlled shutdown

    async def _controlled_shutdown(self, zk: ZkClient) -> None:
        self.state = "shutting_down"
        if self._force or self.epoch is None:
            return
        cfg = self.config
        path = r.controlled_shutdown_path(cfg.broker_id)
        request = r.encode(r.ControlledShutdownRequest(broker_epoch=self.epoch))
        try:
            try:
                await zk.retry(zk.create, path, request, ephemeral=True)
            except NodeExistsError:
                await zk.retry(zk.set, path, request)  # ours from an earlier attempt
        except ZkException as exc:
            self.err(f"{self.name}: controlled shutdown request failed: {describe(exc, path)}")
            return
        leading = self.cache.leader_of()
        noun = "leadership" if len(leading) == 1 else "leaderships"
        self.out(f"{self.name}: controlled shutdown: moving {len(leading)} {noun} away")
        if not leading:
            return
        timeout = cfg.shutdown_timeout_ms / 1000
        with trio.move_on_after(timeout):
            while self.cache.leader_of() and not (self._force or self._lost):
                await self._changed.wait()
        still = self.cache.leader_of()
        if still:
            why = (
                "stopping anyway" if self._force or self._lost else f"timed out after {timeout:g} s"
            )
            self.out(f"{self.name}: controlled shutdown {why}; still leader of {', '.join(still)}")
        else:
            self.out(f"{self.name}: controlled shutdown complete: leader of nothing")

    # ------------------------------------------------------------------ status requests

    def status(self) -> dict[str, Any]:
        """The status request's answer: identity, then the cache's metadata view."""
        return {
            "broker_id": self.config.broker_id,
            "epoch": self.epoch,
            "rack": self.config.rack,
            "host": self.config.host,
            "port": self.port,
            "state": self.state,
            "session_id": hex_session(self.session_id),
            **self.cache.status(),
        }


def run_broker(config: BrokerConfig) -> int:
    """Run a broker until stopped; returns the process exit code."""
    return trio.run(Broker(config).run)
