"""An async (trio) ZooKeeper client: sessions that survive controller changes, pipelined
requests, watches as callbacks or async iterators, typed results.

    async with open_client("127.0.0.1:2181,127.0.0.1:2182") as zk:
        await zk.create("/app", b"v")
        data, stat = await zk.get("/app")

States: CONNECTING -> CONNECTED; a broken connection makes it SUSPENDED (pending requests
fail with ConnectionLossError) while it reconnects to another server with the same session;
an expired session makes it LOST (every later call raises SessionExpiredError).
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import trio

from controller.client.errors import (
    RETRYABLE,
    ConnectionLossError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
    ZkException,
    error_for,
)
from controller.node.config import Address, parse_bootstrap
from controller.zk.constants import (
    XID_AUTH,
    XID_NOTIFICATION,
    XID_PING,
    XID_SET_WATCHES,
    AddWatchMode,
    CreateMode,
    EventType,
    OpCode,
    WatcherType,
)
from controller.zk.jute import JuteError
from controller.zk.protocol import (
    ClientFramer,
    ConnectedEvent,
    FrameTooLarge,
    ReplyEvent,
    decode_notification,
    decode_response,
    encode_connect_request,
    encode_request,
)
from controller.zk.records import (
    ACL,
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    ConnectRequest,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    MultiRequest,
    RemoveWatchesRequest,
    SetACLRequest,
    SetDataRequest,
    SetWatches,
    Stat,
    SyncRequest,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

OPEN_ACL_UNSAFE = [ACL(31, Id("world", "anyone"))]


class State(enum.StrEnum):
    """Connection/session state, as kazoo names them."""

    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    SUSPENDED = "SUSPENDED"
    LOST = "LOST"
    CLOSED = "CLOSED"


@attrs.frozen
class WatchedEvent:
    """A watch notification: event type (EventType), path."""

    type: int
    path: str


WatchCallback = Callable[[WatchedEvent], None]


class _Pending:
    __slots__ = ("done", "error", "op", "result")

    def __init__(self, op: int) -> None:
        self.op = op
        self.done = trio.Event()
        self.result: Any = None
        self.error: ZkException | None = None


class ZkClient:
    """See the module docstring. Create with `open_client`."""

    def __init__(self, servers: Sequence[Address], session_timeout_ms: int = 10000) -> None:
        self.servers = list(servers)
        self.requested_timeout = session_timeout_ms
        self.session_id = 0
        self.password = b"\0" * 16
        self.timeout_ms = session_timeout_ms
        self.last_zxid = 0
        self.state = State.CONNECTING
        self._xids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._stream: trio.SocketStream | None = None
        self._send_lock = trio.Lock()
        self._connected = trio.Event()
        self._state_listeners: list[Callable[[State], None]] = []
        self._data_watches: dict[str, list[WatchCallback]] = {}
        self._exist_watches: dict[str, list[WatchCallback]] = {}
        self._child_watches: dict[str, list[WatchCallback]] = {}
        self._persistent: dict[str, list[WatchCallback]] = {}
        self._auth: list[tuple[str, bytes]] = []
        self.server: Address | None = None
        self.last_heard = 0.0  # trio clock of the last bytes received from a server

    # ------------------------------------------------------------------ lifecycle

    def add_listener(self, listener: Callable[[State], None]) -> None:
        self._state_listeners.append(listener)

    def remove_listener(self, listener: Callable[[State], None]) -> None:
        if listener in self._state_listeners:
            self._state_listeners.remove(listener)

    def _set_state(self, state: State) -> None:
        if state != self.state:
            log.info("zk client: %s -> %s", self.state, state)
            self.state = state
            for listener in list(self._state_listeners):
                listener(state)

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        order = list(self.servers)
        random.shuffle(order)
        failures = 0
        for server in itertools.cycle(order):
            if self.state in (State.LOST, State.CLOSED):
                break
            try:
                await self._session(server)
                failures = 0
            except* (
                OSError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
                trio.TooSlowError,
                _Refused,
                FrameTooLarge,  # the server speaks something else (an HTTP proxy, say)
                JuteError,
            ) as group:
                log.info("zk client: %s: %s", server, group.exceptions[0])
                failures += 1
            self._fail_pending(ConnectionLossError())
            if self.state == State.CONNECTED:
                self._set_state(State.SUSPENDED)
            # Wake whoever waits on the old event: they re-check the state and wait on the
            # new one (otherwise a waiter would sleep through the next successful connect).
            old, self._connected = self._connected, trio.Event()
            old.set()
            if self.state in (State.LOST, State.CLOSED):
                break
            await trio.sleep(min(1.0, 0.01 * failures))

    async def _session(self, server: Address) -> None:
        with trio.fail_after(max(1.0, self.timeout_ms / 1000)):
            stream = await trio.open_tcp_stream(server.host, server.port)
        async with stream:
            req = ConnectRequest(
                0, self.last_zxid, self.requested_timeout, self.session_id, self.password, False
            )
            await stream.send_all(encode_connect_request(req))
            framer = ClientFramer()
            with trio.fail_after(max(1.0, self.timeout_ms / 1000)):
                resp = None
                while resp is None:
                    data = await stream.receive_some(65536)
                    if not data:
                        raise _Refused("server closed the connection during the handshake")
                    framer.feed(bytes(data))
                    event = framer.next_event()
                    if event is not None:
                        assert isinstance(event, ConnectedEvent)
                        resp = event.response
            if resp.timeout <= 0:
                self._set_state(State.LOST)
                self._fail_pending(SessionExpiredError())
                self._connected.set()  # wake waiters: they will see LOST
                return
            self.session_id, self.password, self.timeout_ms = (
                resp.session_id,
                resp.passwd,
                resp.timeout,
            )
            self._stream = stream
            self.server = server
            self.last_heard = trio.current_time()
            # Re-authenticate and re-arm watches before anything else (as the Java client).
            for scheme, credential in self._auth:
                await stream.send_all(
                    encode_request(XID_AUTH, OpCode.AUTH, AuthPacket(0, scheme, credential))
                )
            if self._data_watches or self._exist_watches or self._child_watches:
                watches = SetWatches(
                    self.last_zxid,
                    sorted(self._data_watches),
                    sorted(self._exist_watches),
                    sorted(self._child_watches),
                )
                await stream.send_all(encode_request(XID_SET_WATCHES, OpCode.SET_WATCHES, watches))
            for path in self._persistent:
                xid = next(self._xids)
                self._pending[xid] = _Pending(OpCode.ADD_WATCH)
                req_w = AddWatchRequest(path, AddWatchMode.PERSISTENT_RECURSIVE)
                await stream.send_all(encode_request(xid, OpCode.ADD_WATCH, req_w))
            self._set_state(State.CONNECTED)
            self._connected.set()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pinger, stream)
                    await self._reader(stream, framer)
                    nursery.cancel_scope.cancel()
            finally:
                self._stream = None

    async def wait_connected(self) -> None:
        """Wait until a session is established (or it is lost or the client closed)."""
        while self.state not in (State.CONNECTED, State.LOST, State.CLOSED):
            await self._connected.wait()

    async def _pinger(self, stream: trio.SocketStream) -> None:
        interval = max(0.05, self.timeout_ms / 3000)
        while True:
            await trio.sleep(interval)
            async with self._send_lock:
                await stream.send_all(encode_request(XID_PING, OpCode.PING, None))

    async def _reader(self, stream: trio.SocketStream, framer: ClientFramer) -> None:
        read_timeout = max(0.5, self.timeout_ms * 2 / 3000)
        while True:
            with trio.move_on_after(read_timeout) as scope:
                data = await stream.receive_some(65536)
            if scope.cancelled_caught:
                raise _Refused("no traffic from the server within the read timeout")
            if not data:
                raise _Refused("server closed the connection")
            self.last_heard = trio.current_time()
            framer.feed(bytes(data))
            while (event := framer.next_event()) is not None:
                assert isinstance(event, ReplyEvent)
                self._dispatch(event)

    def _dispatch(self, event: ReplyEvent) -> None:
        header = event.header
        if header.zxid > 0:
            self.last_zxid = max(self.last_zxid, header.zxid)
        if header.xid == XID_NOTIFICATION:
            self._deliver(decode_notification(event.body))
            return
        if header.xid in (XID_PING, XID_AUTH, XID_SET_WATCHES):
            if header.xid == XID_AUTH and header.err:
                log.warning("zk client: authentication failed (%d)", header.err)
            return
        pending = self._pending.pop(header.xid, None)
        if pending is None:
            return
        if header.err:
            pending.error = error_for(header.err)
        else:
            try:
                pending.result = decode_response(pending.op, event.body)
            except Exception as exc:  # a malformed reply is a broken connection
                pending.error = ConnectionLossError(f"bad reply: {exc}")
        pending.done.set()

    def _deliver(self, notification: Any) -> None:
        ev = WatchedEvent(notification.type, notification.path)
        path = ev.path
        callbacks: list[WatchCallback] = []
        if ev.type in (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED):
            callbacks += self._data_watches.pop(path, [])
            callbacks += self._exist_watches.pop(path, [])
        elif ev.type == EventType.NODE_DELETED:
            callbacks += self._data_watches.pop(path, [])
            callbacks += self._exist_watches.pop(path, [])
            callbacks += self._child_watches.pop(path, [])
        elif ev.type == EventType.NODE_CHILDREN_CHANGED:
            callbacks += self._child_watches.pop(path, [])
        for prefix, persistent in self._persistent.items():
            below = path == prefix or path.startswith(prefix.rstrip("/") + "/")
            if below and ev.type != EventType.NODE_CHILDREN_CHANGED:
                callbacks += persistent
        seen: set[int] = set()
        for cb in callbacks:
            if id(cb) not in seen:  # one notification per watcher
                seen.add(id(cb))
                cb(ev)

    def _fail_pending(self, error: ZkException) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            p.error = error
            p.done.set()

    async def close(self) -> None:
        if self.state == State.CONNECTED and self._stream is not None:
            with trio.move_on_after(2):
                await self._call(OpCode.CLOSE_SESSION, None)
        self._set_state(State.CLOSED)
        self._fail_pending(ConnectionLossError("client closed"))

    # ------------------------------------------------------------------ requests

    async def _call(self, op: int, record: Any, timeout: float | None = None) -> Any:
        if self.state == State.LOST:
            raise SessionExpiredError()
        if self.state == State.CLOSED:
            raise ConnectionLossError("client closed")
        with trio.move_on_after(timeout or max(1.0, self.timeout_ms / 1000)) as scope:
            await self.wait_connected()
        if scope.cancelled_caught or self._stream is None:
            raise ConnectionLossError("not connected")
        xid = next(self._xids)
        pending = _Pending(op)
        self._pending[xid] = pending
        stream = self._stream
        try:
            async with self._send_lock:
                await stream.send_all(encode_request(xid, op, record))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._pending.pop(xid, None)
            raise ConnectionLossError(str(exc)) from None
        with trio.move_on_after(timeout or max(2.0, self.timeout_ms * 2 / 1000)) as scope:
            await pending.done.wait()
        if scope.cancelled_caught:
            self._pending.pop(xid, None)
            raise OperationTimeoutError()
        if pending.error is not None:
            raise pending.error
        return pending.result

    async def create(
        self,
        path: str,
        value: bytes | None = b"",
        acl: Sequence[ACL] | None = None,
        *,
        ephemeral: bool = False,
        sequence: bool = False,
        container: bool = False,
        makepath: bool = False,
    ) -> str:
        if container:
            mode = CreateMode.CONTAINER
        else:
            mode = CreateMode(int(ephemeral) | (int(sequence) << 1))
        request = CreateRequest(path, value, list(acl or OPEN_ACL_UNSAFE), int(mode))
        op = OpCode.CREATE_CONTAINER if container else OpCode.CREATE
        try:
            resp = await self._call(op, request)
        except NoNodeError:
            if not makepath:
                raise
            await self.ensure_path(path.rsplit("/", 1)[0] or "/")
            resp = await self._call(op, request)
        created: str = resp.path
        return created

    async def ensure_path(self, path: str) -> None:
        if path == "/":
            return
        current = ""
        for part in path.strip("/").split("/"):
            current += "/" + part
            if await self.exists(current) is None:
                try:
                    await self.create(current)
                except ZkException as exc:
                    if exc.code != NodeExistsCode:
                        raise

    async def get(self, path: str, watch: WatchCallback | None = None) -> tuple[bytes, Stat]:
        if watch is not None:
            self._data_watches.setdefault(path, []).append(watch)
        try:
            resp = await self._call(OpCode.GET_DATA, GetDataRequest(path, watch is not None))
        except NoNodeError:
            _forget(self._data_watches, path, watch)  # the server set no watch
            raise
        return resp.data or b"", resp.stat

    async def get_nullable(self, path: str) -> tuple[bytes | None, Stat]:
        """`get` without a watch, keeping a null buffer (length -1 on the wire, e.g. a node
        created with no data by zkCli) as None instead of b"", as kazoo's `get` does."""
        resp = await self._call(OpCode.GET_DATA, GetDataRequest(path, False))
        data: bytes | None = resp.data
        return data, resp.stat

    async def exists(self, path: str, watch: WatchCallback | None = None) -> Stat | None:
        if watch is not None:
            self._exist_watches.setdefault(path, []).append(watch)
        try:
            resp = await self._call(OpCode.EXISTS, ExistsRequest(path, watch is not None))
        except NoNodeError:
            return None
        stat: Stat = resp.stat
        return stat

    async def set(self, path: str, value: bytes, version: int = -1) -> Stat:
        resp = await self._call(OpCode.SET_DATA, SetDataRequest(path, value, version))
        stat: Stat = resp.stat
        return stat

    async def delete(self, path: str, version: int = -1, recursive: bool = False) -> None:
        if recursive:
            try:
                for child in await self.get_children(path):
                    await self.delete(f"{path.rstrip('/')}/{child}", recursive=True)
            except NoNodeError:
                return
        try:
            await self._call(OpCode.DELETE, DeleteRequest(path, version))
        except NotEmptyError:
            if not recursive:
                raise
            await self.delete(path, version, recursive=True)

    async def get_children(self, path: str, watch: WatchCallback | None = None) -> list[str]:
        if watch is not None:
            self._child_watches.setdefault(path, []).append(watch)
        try:
            resp = await self._call(
                OpCode.GET_CHILDREN, GetChildrenRequest(path, watch is not None)
            )
        except NoNodeError:
            _forget(self._child_watches, path, watch)  # the server set no watch
            raise
        return list(resp.children)

    async def get_children_with_stat(self, path: str) -> tuple[list[str], Stat]:
        resp = await self._call(OpCode.GET_CHILDREN2, GetChildren2Request(path, False))
        return list(resp.children), resp.stat

    async def get_acls(self, path: str) -> tuple[list[ACL], Stat]:
        resp = await self._call(OpCode.GET_ACL, GetACLRequest(path))
        return list(resp.acl), resp.stat

    async def set_acls(self, path: str, acl: Sequence[ACL], version: int = -1) -> Stat:
        resp = await self._call(OpCode.SET_ACL, SetACLRequest(path, list(acl), version))
        stat: Stat = resp.stat
        return stat

    async def add_auth(self, scheme: str, credential: str) -> None:
        packet = AuthPacket(0, scheme, credential.encode())
        self._auth.append((scheme, packet.auth))
        await self.wait_connected()
        assert self._stream is not None
        async with self._send_lock:
            await self._stream.send_all(encode_request(XID_AUTH, OpCode.AUTH, packet))
        await self.sync("/")  # the auth packet is processed in order before this returns

    async def sync(self, path: str = "/") -> None:
        await self._call(OpCode.SYNC, SyncRequest(path))

    async def check(self, path: str, version: int) -> Stat:
        resp = await self._call(OpCode.CHECK, CheckVersionRequest(path, version))
        stat: Stat = resp.stat
        return stat

    async def multi(self, ops: Sequence[tuple[int, Any]]) -> list[tuple[int, int, Any]]:
        """Atomic multi-op: [(opcode, request record)] -> [(type, err, result)]."""
        resp = await self._call(OpCode.MULTI, MultiRequest(list(ops)))
        results: list[tuple[int, int, Any]] = list(resp.results)
        return results

    def add_persistent_watch(self, path: str, callback: WatchCallback) -> Awaitable[Any]:
        """Persistent recursive watch on `path` and everything below it."""
        self._persistent.setdefault(path, []).append(callback)
        return self._call(
            OpCode.ADD_WATCH, AddWatchRequest(path, AddWatchMode.PERSISTENT_RECURSIVE)
        )

    async def remove_persistent_watch(self, path: str, callback: WatchCallback) -> None:
        """Stop calling `callback` for events below `path`. When it was the last callback on
        `path`, the watch is no longer re-added after a reconnect and is removed from the
        server too (unless a one-shot watch of ours on `path` itself would share the removal)."""
        _forget(self._persistent, path, callback)
        others = (self._persistent, self._data_watches, self._exist_watches, self._child_watches)
        if any(path in watches for watches in others):
            return
        if self.state == State.CONNECTED:
            # ANY: a persistent watch has a data half and a children half (as in ZooKeeper),
            # and nothing else of ours is left on this path to keep.
            with contextlib.suppress(ZkException):
                await self._call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(path, WatcherType.ANY))

    @asynccontextmanager
    async def watch(self, path: str) -> AsyncIterator[trio.MemoryReceiveChannel[WatchedEvent]]:
        """Every event on `path` and below, as an async iterator (a persistent watch)."""
        send, receive = trio.open_memory_channel[WatchedEvent](1000)

        def forward(ev: WatchedEvent) -> None:
            try:
                send.send_nowait(ev)
            except trio.WouldBlock:
                log.warning("zk client: watch consumer too slow, event dropped")

        await self.add_persistent_watch(path, forward)
        try:
            yield receive
        finally:
            callbacks = self._persistent.get(path, [])
            if forward in callbacks:
                callbacks.remove(forward)

    async def retry(
        self, fn: Callable[..., Awaitable[T]], *args: Any, attempts: int = 5, **kwargs: Any
    ) -> T:
        """Call `fn` again on connection loss or timeout (with a short backoff)."""
        for attempt in range(attempts):
            try:
                return await fn(*args, **kwargs)
            except RETRYABLE:
                if attempt == attempts - 1:
                    raise
                await trio.sleep(min(1.0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")


NodeExistsCode = -110


def _forget(
    table: dict[str, list[WatchCallback]], path: str, callback: WatchCallback | None
) -> None:
    callbacks = table.get(path)
    if callback is None or callbacks is None:
        return
    if callback in callbacks:
        callbacks.remove(callback)
    if not callbacks:
        table.pop(path, None)


class _Refused(Exception):
    """The server refused or dropped us; try another."""


@asynccontextmanager
async def open_client(
    hosts: str | Sequence[Address], session_timeout_ms: int = 10000, connect_timeout: float = 10.0
) -> AsyncIterator[ZkClient]:
    """Connect (trying the servers in turn) and close the session on exit."""
    servers = parse_bootstrap(hosts) if isinstance(hosts, str) else list(hosts)
    client = ZkClient(servers, session_timeout_ms)
    async with trio.open_nursery() as nursery:
        await nursery.start(client._run)
        with trio.move_on_after(connect_timeout):
            await client.wait_connected()
        if client.state != State.CONNECTED:
            nursery.cancel_scope.cancel()
            where = hosts if isinstance(hosts, str) else ",".join(map(str, hosts))
            raise ConnectionLossError(f"could not connect to any of {where}")
        try:
            yield client
        finally:
            await client.close()
            nursery.cancel_scope.cancel()
