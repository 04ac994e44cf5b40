"""The ZooKeeper protocol on a controller's client port (trio shell).

- Reads are answered from this controller's replica; writes become log entries (proposed
  here when leader, else forwarded to the leader) and are answered once *this* controller
  has applied them. Each connection answers in request order (FIFO per session): a read
  queued behind a pending write is evaluated only after that write applied, so a client
  reads its own writes.
- Watch notifications are queued when the triggering entry is applied, before any later
  reply on that connection, so a client sees the event before data that reflects it.
- Sessions are replicated. The leader tracks liveness: activity on any controller is relayed
  to it (batched `SessionTouch` frames) and it proposes `CloseSession(expired)` when a session
  stays silent past its timeout. A new leader gives every session a full timeout.
- When the leader changes, connections with writes in flight are closed: their outcome is
  unknown, and ZooKeeper clients treat that as connection loss and reconnect.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from controller.coord import acl as acls
from controller.coord.commands import (
    Applied,
    Barrier,
    CloseSession,
    Command,
    CreateSession,
    ExpireTTL,
    Write,
    encode_command,
)
from controller.coord.datatree import ZkError
from controller.coord.machine import WRITE_OPS, CoordStateMachine
from controller.limits import JUTE_MAX_BUFFER
from controller.node.codec import Forward, ServiceFrame, SessionTouch
from controller.node.listeners import CommittedBatch, LeaderChange
from controller.raft.types import Entry, LogIndex, NodeId
from controller.service.fourletter import four_letter_reply
from controller.service.watches import WatchTable
from controller.service.zk_reads import ZkReads
from controller.zk.constants import (
    XID_AUTH,
    XID_NOTIFICATION,
    XID_PING,
    Err,
    KeeperState,
    OpCode,
)
from controller.zk.jute import JuteError
from controller.zk.protocol import (
    ConnectEvent,
    FourLetterWord,
    FrameTooLarge,
    RequestEvent,
    ServerFramer,
    UnknownOpcode,
    decode_request,
    encode_connect_response,
    encode_notification,
    encode_reply,
    record_bytes,
)
from controller.zk.records import (
    AuthPacket,
    ConnectRequest,
    ConnectResponse,
    SetWatches,
    SetWatches2,
    SyncRequest,
    SyncResponse,
)

if TYPE_CHECKING:
    from controller.node.config import NodeConfig
    from controller.node.server import ControllerNode

log = logging.getLogger(__name__)

TOUCH_INTERVAL_S = 0.1
STUCK_WRITE_S = 5.0
EXPIRY_RECHECK_S = 1.0  # the expiry loop looks again at least this often
TTL_CHECK_S = 1.0
HANDSHAKE_TIMEOUT_S = 10.0


# Opcodes as plain ints: enum member lookups are slow on the per-request path.
_OP_AUTH = int(OpCode.AUTH)
_OP_CLOSE_SESSION = int(OpCode.CLOSE_SESSION)
_OP_PING = int(OpCode.PING)
_OP_SET_WATCHES = int(OpCode.SET_WATCHES)
_OP_SET_WATCHES2 = int(OpCode.SET_WATCHES2)
_OP_SYNC = int(OpCode.SYNC)


@attrs.frozen
class ZkSettings:
    """ZooKeeper-compatible limits and options (see docs/coordination.md)."""

    tick_time_ms: int = 2000
    min_session_timeout_ms: int = 0  # 0: 2 ticks
    max_session_timeout_ms: int = 0  # 0: 20 ticks
    max_client_cnxns: int = 0  # per client address; 0 = unlimited (ZooKeeper's default is 60)
    max_outstanding: int = 1000  # requests per connection before we stop reading it
    max_watches_per_session: int = 0  # 0 = unlimited
    jute_max_buffer: int = JUTE_MAX_BUFFER
    four_letter_whitelist: tuple[str, ...] = ("*",)
    super_digest: str = ""  # "super:<base64 sha1>" as ZooKeeper's superDigest
    extended_types_enabled: bool = False  # ZooKeeper's extendedTypesEnabled: TTL nodes

    @property
    def min_timeout(self) -> int:
        return self.min_session_timeout_ms or 2 * self.tick_time_ms

    @property
    def max_timeout(self) -> int:
        return self.max_session_timeout_ms or 20 * self.tick_time_ms


class _Slot:
    """One request awaiting its turn to be answered on a connection."""

    __slots__ = ("compute", "done", "op", "reply", "xid")

    def __init__(self, xid: int, op: int) -> None:
        self.xid = xid
        self.op = op
        self.reply: bytes | None = None
        self.done = False
        # For reads: evaluated when the slot reaches the head of the queue.
        self.compute: Callable[[], bytes] | None = None


class ClientConnection:
    """State of one ZooKeeper client connection."""

    _ids = itertools.count(1)

    def __init__(self, stream: trio.SocketStream, address: str) -> None:
        self.id = next(self._ids)
        self.stream = stream
        self.address = address
        self.session_id = 0
        self.timeout_ms = 0
        self.identities: list[tuple[str, str]] = [("ip", address)]
        self.queue: deque[_Slot] = deque()
        self.out: list[bytes] = []
        self.wake = trio.Event()
        self.room = trio.Event()
        self.closing = False
        self.pending_writes = 0
        self.received = 0
        self.sent = 0
        self.connected_at = time.monotonic()
        self.last_zxid = 0

    def push(self, data: bytes) -> None:
        self.out.append(data)
        self.sent += 1
        self.wake.set()

    def close(self) -> None:
        self.closing = True
        self.wake.set()
        self.room.set()


class ZkService:
    """Serves the ZooKeeper protocol on top of a controller node (see module docstring)."""

    def __init__(self, node: ControllerNode, machine: CoordStateMachine, settings: ZkSettings):
        self.node = node
        self.machine = machine
        self.settings = settings
        self.watches = WatchTable()
        self.reads = ZkReads(lambda: machine.tree, self.watches, settings.max_watches_per_session)
        machine.set_config(ensemble_config(node.config), _now_ms())
        self.connections: dict[int, ClientConnection] = {}
        self.by_session: dict[int, set[ClientConnection]] = {}
        self.per_address: dict[str, int] = {}
        # Sequence numbers match applied entries to waiting requests on the origin
        # controller. They start at the wall clock in nanoseconds, so a restarted controller
        # re-applying its previous incarnation's entries can never complete a new request
        # with an old result (that would need more requests than nanoseconds in between).
        self._seq = itertools.count(time.time_ns())
        self._pending: dict[int, Callable[[Applied], None]] = {}  # seq -> completion
        self._unsent: list[tuple[int, bytes]] = []  # (seq, command) not handed to a leader yet
        # seq -> the leader it was handed to, until applied here.
        self._sent: dict[int, NodeId] = {}
        self._pending_since: deque[tuple[float, int]] = deque()  # (proposed at, seq), in order
        self._forward_wake = trio.Event()
        # Background loops sleep on these instead of polling: an idle controller must cost
        # nothing (each trio wake-up is 0.1-0.3 ms of CPU here; see docs/performance.md).
        self._touch_wake = trio.Event()  # first touch since the last relay
        self._leader_wake = trio.Event()  # this controller became leader
        self._pending_wake = trio.Event()  # a request is waiting for the log
        self._session_wake = trio.Event()  # a session was created (an earlier deadline)
        self._touched: set[int] = set()
        self._deadlines: dict[int, float] = {}  # leader only: session -> trio deadline
        self._expiring: set[int] = set()
        self._is_leader = False
        self._leader: NodeId | None = None
        self.latency_min = 0.0
        self.latency_max = 0.0
        self.latency_total = 0.0
        self.latency_count = 0
        self.packets_received = 0
        self.packets_sent = 0

    # ------------------------------------------------------------------ RaftListener

    def handle_commit(self, batch: CommittedBatch) -> None:
        for _entry, result in batch:
            if isinstance(result, Applied):
                self._on_applied(result)

    def handle_snapshot(self, index: LogIndex, zxid: int) -> None:
        """The tree was replaced wholesale; watches are not re-evaluated here (see
        docs/coordination.md: clients reconnecting with SetWatches catch up)."""

    def handle_leader_change(self, change: LeaderChange) -> None:
        self._on_leader_change(change.role, change.leader_id)

    def _on_applied(self, result: Applied) -> None:
        for event_type, path in result.events:
            self._notify(event_type, path, result.zxid)
        if result.timeout_ms and result.session_id:  # a session was created
            self._deadlines[result.session_id] = trio.current_time() + result.timeout_ms / 1000
            self._session_wake.set()
        if result.closed_session:
            self._deadlines.pop(result.session_id, None)
            self._expiring.discard(result.session_id)
        if result.origin == self.node.node_id:
            self._sent.pop(result.seq, None)
            done = self._pending.pop(result.seq, None)
            if done is not None:
                done(result)
        if result.closed_session:
            for conn in list(self.by_session.get(result.session_id, ())):
                if not conn.pending_writes:
                    conn.close()

    def _on_leader_change(self, role: str, leader_id: NodeId | None) -> None:
        was_leader = self._is_leader
        self._is_leader = role == "leader"
        if self._is_leader and not was_leader:
            self._leader_wake.set()
            # A new leader cannot know how long sessions were silent: full timeout for all.
            now = trio.current_time()
            self._deadlines = {
                sid: now + s.timeout_ms / 1000 for sid, s in self.machine.sessions.items()
            }
            self._expiring.clear()
        if leader_id != self._leader:
            self._leader = leader_id
            # Requests handed to another leader may be lost with it: fail their connections
            # (outcome unknown, as in ZooKeeper). Requests not yet sent go to the new one;
            # those this node proposed as leader just before hearing of its own election
            # stay in its log and complete normally.
            for seq, sent_to in list(self._sent.items()):
                if sent_to == leader_id:
                    continue
                del self._sent[seq]
                done = self._pending.pop(seq, None)
                if done is not None:
                    done(Applied(self.node.node_id, seq, 0, Err.CONNECTIONLOSS))
            self._forward_wake.set()

    def on_peer_frame(self, src: NodeId, frame: ServiceFrame) -> None:
        if isinstance(frame, SessionTouch):
            if self._is_leader:
                now = trio.current_time()
                for sid in frame.session_ids:
                    session = self.machine.sessions.get(sid)
                    if session is not None:
                        self._deadlines[sid] = now + session.timeout_ms / 1000
            return
        if not self.node.core.is_leader:
            return  # the origin notices the leader change and fails those requests
        for data in frame.commands:
            self.node.submit(data, _ignore)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._relay_touches)
            nursery.start_soon(self._flush_forwards)
            nursery.start_soon(self._sweep_stuck_writes)
            nursery.start_soon(self._expire_sessions)
            if self.settings.extended_types_enabled:
                nursery.start_soon(self._expire_ttl_nodes)
            task_status.started()

    # ------------------------------------------------------------------ sessions (leader)

    def touch(self, session_id: int) -> None:
        if session_id:
            self._touched.add(session_id)
            self._touch_wake.set()

    async def _relay_touches(self) -> None:
        while True:
            await self._touch_wake.wait()
            await trio.sleep(TOUCH_INTERVAL_S)  # batch what else arrives meanwhile
            self._touch_wake = trio.Event()
            touched, self._touched = self._touched, set()
            if self._is_leader:
                self.on_peer_frame(self.node.node_id, SessionTouch(tuple(touched)))
            elif self._leader is not None:
                self.node.send_peer(self._leader, SessionTouch(tuple(sorted(touched))))

    async def _expire_sessions(self) -> None:
        while True:
            if not self._is_leader:
                self._leader_wake = trio.Event()
                await self._leader_wake.wait()
                continue
            # Sleep until the earliest deadline: touches only push deadlines later, and a
            # new session (the one way to add an earlier one) wakes us.
            now = trio.current_time()
            earliest = min(self._deadlines.values(), default=now + EXPIRY_RECHECK_S)
            self._session_wake = trio.Event()
            with trio.move_on_at(max(now, min(earliest, now + EXPIRY_RECHECK_S))):
                await self._session_wake.wait()
            if not self._is_leader:
                continue
            # Sessions this controller serves right now are alive by definition.
            for sid in self._touched:
                session = self.machine.sessions.get(sid)
                if session is not None:
                    self._deadlines[sid] = trio.current_time() + session.timeout_ms / 1000
            now = trio.current_time()
            for sid, deadline in list(self._deadlines.items()):
                if deadline <= now and sid not in self._expiring:
                    if sid not in self.machine.sessions:
                        del self._deadlines[sid]
                        continue
                    self._expiring.add(sid)
                    log.info("session 0x%x expired", sid)
                    cmd = CloseSession(0, 0, sid, True, _now_ms())
                    self.node.submit(encode_command(cmd), _ignore)

    async def _expire_ttl_nodes(self) -> None:
        while True:
            if not self._is_leader:
                await self._leader_wake.wait()
                continue
            await trio.sleep(TTL_CHECK_S)
            if not self._is_leader:
                continue
            now = _now_ms()
            expired = self.machine.tree.expired_ttl_nodes(now)
            if expired:
                self.node.submit(encode_command(ExpireTTL(tuple(expired), now)), _ignore)

    # ------------------------------------------------------------------ public proposals

    async def open_session(self, timeout_ms: int) -> int:
        """Open a session for a component of this controller (the broker controller) and
        return its id. Raises `ServiceWriteError` if the log did not take it. The caller keeps
        it alive with `touch`."""
        password = os.urandom(16)
        node_id = self.node.node_id
        applied = await self.propose_command(
            lambda seq: CreateSession(node_id, seq, timeout_ms, password, _now_ms())
        )
        if applied.err:
            raise ServiceWriteError(applied.err, "could not open a session")
        return applied.session_id

    async def write(self, session_id: int, op: int, record: Any) -> Applied:
        """Propose one write request (jute record, e.g. a `MultiRequest`) as `session_id`
        and return its result once applied on this controller. Requests made here get their
        own sequence numbers from the same counter as client requests, so a result can only
        ever complete the request that proposed it. `Applied.err` is ZooKeeper's error code
        (CONNECTIONLOSS with zxid 0: outcome unknown, e.g. the leader changed)."""
        node_id = self.node.node_id
        body = record_bytes(record)
        extended = self.settings.extended_types_enabled
        return await self.propose_command(
            lambda seq: Write(
                node_id, seq, session_id, op, body, (("super", ""),), _now_ms(), extended
            )
        )

    async def propose_command(self, build: Callable[[int], Command]) -> Applied:
        """Propose the command `build(seq)` and wait until it is applied here."""
        done = trio.Event()
        box: list[Applied] = []

        def complete(result: Applied) -> None:
            box.append(result)
            done.set()

        self._propose(build, complete)
        await done.wait()
        return box[0]

    # ------------------------------------------------------------------ proposals

    def _propose(self, build: Callable[[int], Command], done: Callable[[Applied], None]) -> bool:
        """Send a command to the log; `done` runs when it is applied here (or fails).

        Requests wait here (bounded by the stuck-write sweep) while no leader is reachable,
        so a client that reconnects during an election is not turned away."""
        seq = next(self._seq)
        data = encode_command(build(seq))
        self._pending[seq] = done
        self._pending_since.append((trio.current_time(), seq))
        self._unsent.append((seq, data))
        self._forward_wake.set()
        self._pending_wake.set()
        return True

    async def _sweep_stuck_writes(self) -> None:
        """Fail requests whose entry never came back (e.g. a Forward frame lost with a
        broken peer connection): their clients see connection loss and retry, instead of
        waiting forever."""
        while True:
            if not self._pending_since:
                self._pending_wake = trio.Event()
                await self._pending_wake.wait()
            await trio.sleep(1.0)
            limit = trio.current_time() - STUCK_WRITE_S
            since = self._pending_since
            while since and (since[0][0] <= limit or since[0][1] not in self._pending):
                _, seq = since.popleft()
                self._sent.pop(seq, None)
                done = self._pending.pop(seq, None)
                if done is not None:
                    log.warning("request %d got no answer from the log in %ss", seq, STUCK_WRITE_S)
                    done(Applied(self.node.node_id, seq, 0, Err.CONNECTIONLOSS))

    async def _flush_forwards(self) -> None:
        while True:
            # Unsent requests (no leader yet, or its connection is down) are retried every
            # 50 ms; with nothing to send, only a new request or a leader change wakes us.
            with trio.move_on_after(0.05 if self._unsent else math.inf):
                await self._forward_wake.wait()
            self._forward_wake = trio.Event()
            await trio.lowlevel.checkpoint()  # let the other readers queue theirs too
            if not self._unsent:
                continue
            batch = [(seq, data) for seq, data in self._unsent if seq in self._pending]
            if self.node.core.is_leader:
                self._unsent = []
                for seq, data in batch:
                    self._sent[seq] = self.node.node_id
                    self.node.submit(data, self._fail_on_error(seq))
                continue
            leader = self.node.core.leader_id
            if leader is None or leader == self.node.node_id:
                self._unsent = batch
                continue  # wait for a leader
            if not self.node.send_peer(leader, Forward(tuple(d for _, d in batch))):
                self._unsent = batch
                continue
            self._unsent = []
            self._sent.update((seq, leader) for seq, _ in batch)

    def _fail_on_error(self, seq: int) -> Callable[[object, Entry | None, Exception | None], None]:
        def callback(result: object, entry: Entry | None, error: Exception | None) -> None:
            if error is not None:
                done = self._pending.pop(seq, None)
                if done is not None:
                    done(Applied(self.node.node_id, seq, 0, Err.CONNECTIONLOSS))

        return callback

    # ------------------------------------------------------------------ notifications

    def _notify(self, event_type: int, path: str, zxid: int) -> None:
        keys = self.watches.trigger(event_type, path)
        if not keys:
            return
        frame = encode_notification(event_type, KeeperState.SYNC_CONNECTED, path, -1)
        for key in keys:
            conn = self.connections.get(key)  # type: ignore[call-overload]
            if conn is not None and not conn.closing:
                conn.push(frame)

    # ------------------------------------------------------------------ connections

    async def handle_client(self, stream: trio.SocketStream, first: bytes) -> None:
        peer = stream.socket.getpeername()
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        limit = self.settings.max_client_cnxns
        if limit and self.per_address.get(address, 0) >= limit:
            log.warning("too many connections from %s (max %d): closing", address, limit)
            return
        conn = ClientConnection(stream, address)
        self.per_address[address] = self.per_address.get(address, 0) + 1
        self.connections[conn.id] = conn
        try:
            framer = ServerFramer(self.settings.jute_max_buffer)
            framer.feed(first)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, conn)
                try:
                    await self._reader(conn, framer)
                finally:
                    conn.close()
                    # Let the writer flush what is queued (e.g. a closeSession reply).
                    with trio.move_on_after(1):
                        while conn.out:
                            await trio.sleep(0.001)
                    nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self.connections.pop(conn.id, None)
            self.watches.drop(conn.id)
            if conn.session_id:
                conns = self.by_session.get(conn.session_id)
                if conns is not None:
                    conns.discard(conn)
                    if not conns:
                        del self.by_session[conn.session_id]
            self.per_address[address] -= 1
            if not self.per_address[address]:
                del self.per_address[address]

    async def _writer(self, conn: ClientConnection) -> None:
        while True:
            while not conn.out:
                if conn.closing:
                    # Everything queued is flushed: closing the stream also wakes the reader
                    # blocked in receive_some, so the client sees the close at once.
                    await conn.stream.aclose()
                    return
                conn.wake = trio.Event()
                await conn.wake.wait()
            batch = b"".join(conn.out)
            conn.out.clear()
            await conn.stream.send_all(batch)
            self.packets_sent += 1

    async def _reader(self, conn: ClientConnection, framer: ServerFramer) -> None:
        stream = conn.stream
        handshake_done = False
        with trio.move_on_after(HANDSHAKE_TIMEOUT_S) as handshake_scope:
            while not handshake_done:
                try:
                    event = framer.next_event()
                except (FrameTooLarge, JuteError) as exc:
                    log.warning("closing client %s: bad handshake: %s", conn.address, exc)
                    return
                if event is None:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    framer.feed(bytes(data))
                    continue
                if isinstance(event, FourLetterWord):
                    conn.push(four_letter_reply(self, event.word.decode("ascii")).encode())
                    return
                assert isinstance(event, ConnectEvent)
                if not await self._handshake(conn, event.request):
                    return
                handshake_done = True
        if handshake_scope.cancelled_caught:
            return
        while not conn.closing:
            try:
                event = framer.next_event()
            except (FrameTooLarge, JuteError) as exc:
                log.warning("closing client %s: %s", conn.address, exc)
                return
            if event is None:
                while len(conn.queue) >= self.settings.max_outstanding and not conn.closing:
                    conn.room = trio.Event()
                    await conn.room.wait()
                data = await stream.receive_some(65536)
                if not data:
                    return
                framer.feed(bytes(data))
                continue
            if not isinstance(event, RequestEvent):
                log.warning("closing client %s: unexpected %s", conn.address, event)
                return
            self.packets_received += 1
            conn.received += 1
            self.touch(conn.session_id)
            if not self._handle_request(conn, event):
                return

    # ------------------------------------------------------------------ handshake

    async def _handshake(self, conn: ClientConnection, req: ConnectRequest) -> bool:
        node = self.node
        if req.last_zxid_seen > node.last_zxid:
            log.info(
                "refusing client %s: it has seen zxid 0x%x, we are at 0x%x",
                conn.address,
                req.last_zxid_seen,
                node.last_zxid,
            )
            return False
        timeout = max(self.settings.min_timeout, min(self.settings.max_timeout, req.timeout))
        if req.session_id == 0:
            password = os.urandom(16)
            result = await self._await_command(
                lambda seq: CreateSession(node.node_id, seq, timeout, password, _now_ms())
            )
            if result is None or result.err:
                return False
            session_id = result.session_id
        else:
            session = self.machine.sessions.get(req.session_id)
            if session is None:
                # This replica may lag the one that created it: catch up through the log.
                await self._await_command(lambda seq: Barrier(node.node_id, seq))
                session = self.machine.sessions.get(req.session_id)
            if session is None or session.password != req.passwd:
                expired = ConnectResponse(0, 0, 0, b"\0" * 16, req.read_only)
                conn.push(encode_connect_response(expired))
                return False
            session_id, password = session.session_id, session.password
            timeout = session.timeout_ms
        conn.session_id, conn.timeout_ms = session_id, timeout
        self.by_session.setdefault(session_id, set()).add(conn)
        self.touch(session_id)
        conn.push(
            encode_connect_response(
                ConnectResponse(0, timeout, session_id, password, req.read_only)
            )
        )
        return True

    async def _await_command(self, build: Callable[[int], Command]) -> Applied | None:
        # Right after an election a follower may not know the leader yet: the request waits
        # for one (bounded here) rather than turning the client away.
        with trio.move_on_after(HANDSHAKE_TIMEOUT_S):
            return await self.propose_command(build)
        return None

    # ------------------------------------------------------------------ requests

    def _handle_request(self, conn: ClientConnection, ev: RequestEvent) -> bool:
        """Queue one request; False to close the connection."""
        xid, op = ev.xid, ev.op
        slot = _Slot(xid, op)
        conn.queue.append(slot)
        started = time.monotonic()
        if op == _OP_PING:
            slot.compute = lambda: encode_reply(XID_PING, self.node.last_zxid, 0, None)
            self._pump(conn)
            return True
        try:
            # Writes are decoded again when applied; decoding here too keeps malformed
            # requests out of the log (the connection is closed, as ZooKeeper does).
            record = decode_request(op, ev.body)
        except UnknownOpcode:
            slot.compute = lambda: encode_reply(xid, self.node.last_zxid, Err.UNIMPLEMENTED, None)
            self._pump(conn)
            return True
        except JuteError as exc:
            if op == _OP_AUTH:
                log.warning("closing client %s: malformed auth packet: %s", conn.address, exc)
                return False
            # ZooKeeper answers a request it cannot deserialize with MARSHALLINGERROR and
            # keeps the connection; such a write never reaches the log here.
            log.info("malformed request (op %d) from %s: %s", op, conn.address, exc)
            slot.compute = lambda: encode_reply(
                xid, self.node.last_zxid, Err.MARSHALLINGERROR, None
            )
            self._pump(conn)
            return True
        if op == _OP_AUTH:
            assert isinstance(record, AuthPacket)
            return self._auth(conn, slot, record)
        if op == _OP_CLOSE_SESSION:
            self._write(conn, slot, started, close=True)
            return True
        if op in WRITE_OPS:
            self._write(conn, slot, started, body=ev.body)
            return True
        if op == _OP_SYNC:
            assert isinstance(record, SyncRequest)
            path = record.path
            self._write(conn, slot, started, sync_path=path)
            return True
        slot.compute = lambda: self._read(conn, xid, op, record, started)
        self._pump(conn)
        return True

    def _auth(self, conn: ClientConnection, slot: _Slot, packet: AuthPacket) -> bool:
        if packet.scheme == "digest":
            ident = acls.digest_id(packet.auth.decode("utf-8", "replace"))
            added = [("digest", ident)]
            if self.settings.super_digest and ident == self.settings.super_digest:
                added.append(("super", ""))
            for identity in added:  # ServerCnxn.addAuthInfo keeps each id once
                if identity not in conn.identities:
                    conn.identities.append(identity)
            slot.compute = lambda: encode_reply(XID_AUTH, 0, 0, None)
            self._pump(conn)
            return True
        log.info("auth scheme %r from %s refused", packet.scheme, conn.address)
        conn.push(encode_reply(XID_AUTH, 0, Err.AUTHFAILED, None))
        return False

    def _write(
        self,
        conn: ClientConnection,
        slot: _Slot,
        started: float,
        *,
        body: bytes = b"",
        close: bool = False,
        sync_path: str | None = None,
    ) -> None:
        xid, op = slot.xid, slot.op
        session_id = conn.session_id
        identities = tuple(conn.identities)
        node_id = self.node.node_id
        extended = self.settings.extended_types_enabled

        def build(seq: int) -> Command:
            if close:
                return CloseSession(node_id, seq, session_id, False, _now_ms())
            if sync_path is not None:
                return Barrier(node_id, seq)
            return Write(node_id, seq, session_id, op, body, identities, _now_ms(), extended)

        def done(result: Applied) -> None:
            conn.pending_writes -= 1
            if result.err == Err.CONNECTIONLOSS and result.zxid == 0:
                conn.close()  # outcome unknown: let the client reconnect, as ZooKeeper does
                return
            zxid = max(result.zxid, self.node.last_zxid)
            if sync_path is not None:
                slot.reply = encode_reply(xid, zxid, 0, SyncResponse(sync_path))
            elif close:
                slot.reply = encode_reply(xid, zxid, 0, None)
            else:
                slot.reply = encode_reply(xid, zxid, result.err, result.response)
            slot.done = True
            self._record_latency(started)
            self._pump(conn)
            if close:
                conn.close()

        conn.pending_writes += 1
        if not self._propose(build, done):
            conn.pending_writes -= 1
            conn.close()

    def _pump(self, conn: ClientConnection) -> None:
        """Answer queued requests in order, evaluating reads once they reach the head."""
        queue = conn.queue
        while queue:
            head = queue[0]
            if not head.done:
                if head.compute is None:
                    break  # a write still in flight
                head.reply = head.compute()
                head.done = True
            queue.popleft()
            assert head.reply is not None
            conn.push(head.reply)
        if len(queue) < self.settings.max_outstanding:
            conn.room.set()

    def _record_latency(self, started: float) -> None:
        ms = (time.monotonic() - started) * 1000
        if not self.latency_count or ms < self.latency_min:
            self.latency_min = ms
        self.latency_max = max(self.latency_max, ms)
        self.latency_total += ms
        self.latency_count += 1

    # ------------------------------------------------------------------ reads

    def _read(
        self, conn: ClientConnection, xid: int, op: int, record: Any, started: float
    ) -> bytes:
        zxid = self.node.last_zxid
        try:
            if op in (_OP_SET_WATCHES, _OP_SET_WATCHES2):
                assert isinstance(record, SetWatches | SetWatches2)
                self.reads.set_watches(conn.id, record, lambda ev, path: _fire(conn, ev, path))
                response = None
            else:
                response = self.reads.read(conn.id, conn.session_id, conn.identities, op, record)
        except ZkError as exc:
            return encode_reply(xid, zxid, exc.code, None)
        finally:
            self._record_latency(started)
        return encode_reply(xid, zxid, 0, response)

    # ------------------------------------------------------------------ status

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "sessions": len(self.machine.sessions),
            "znodes": self.machine.tree.node_count,
            "watches": self.watches.count(),
            "ephemerals": sum(len(p) for p in self.machine.tree.ephemerals.values()),
            "tracked_sessions": len(self._deadlines) if self._is_leader else 0,
        }


class ServiceWriteError(Exception):
    """A write proposed through the service's public interface failed (ZooKeeper code)."""

    def __init__(self, code: int, message: str) -> None:
        name = Err(code).name if code in Err._value2member_map_ else str(code)
        super().__init__(f"{message} ({name})")
        self.code = code


def ensemble_config(config: NodeConfig) -> bytes:
    """/zookeeper/config as ZooKeeper writes it for a static ensemble: one
    `server.N=host:peer:election:role` line per member, then `version=0`. A controller has
    one Raft port, which serves as both the peer and the election port."""
    members = [(nid, addr, "participant") for nid, addr in config.voters.items()]
    members += [(nid, addr, "observer") for nid, addr in config.observers.items()]
    lines = [
        f"server.{nid}={addr.host}:{addr.port}:{addr.port}:{role}"
        for nid, addr, role in sorted(members)
    ]
    return "\n".join([*lines, "version=0"]).encode()


def _fire(conn: ClientConnection, event: int, path: str) -> None:
    conn.push(encode_notification(event, KeeperState.SYNC_CONNECTED, path, -1))


def _ignore(result: object, entry: Entry | None, error: Exception | None) -> None:
    """Completion of proposals whose outcome is observed through `handle_commit`."""


def _now_ms() -> int:
    # Wall-clock time stamped into the command by the proposing controller; every replica
    # applies the same value.
    return int(time.time() * 1000)


__all__ = ["XID_NOTIFICATION", "ClientConnection", "ZkService", "ZkSettings"]
