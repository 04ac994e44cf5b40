"""The ZooKeeper protocol on a controller's client port (trio shell).

- Reads are answered from this controller's replica; writes become typed log entries
  (proposed here when leader, else forwarded to the leader, which stamps them with its time;
  `forwarder.py`) and are answered once *this* controller has applied them. Each connection
  answers in request order (FIFO per session; `connection.py`, `client_port.py`).
- Watch notifications are queued when the triggering entry is applied, before any later
  reply on that connection, so a client sees the event before data that reflects it. When
  the tree jumps by a snapshot install, every watch is judged against the new tree
  (`zk_reads.catch_up_events`).
- Sessions are replicated. The leader tracks liveness (`session_policy.py`): activity on any
  controller is relayed to it (batched `SessionTouch` frames) and it proposes
  `CloseSession(expired)` when a session stays silent past its timeout.
- When the leader changes, requests handed to the old one fail with connection loss: their
  outcome is unknown, and ZooKeeper clients treat that as connection loss and reconnect.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from controller.coord.commands import (
    Applied,
    CloseSession,
    Command,
    CreateSession,
    ExpireTTL,
    Write,
)
from controller.coord.machine import CoordStateMachine
from controller.limits import (
    GLOBAL_OUTSTANDING_LIMIT,
    JUTE_MAX_BUFFER,
    MAX_OUTSTANDING_PER_CONNECTION,
)
from controller.node.codec import Forward, ForwardFailed, ServiceFrame, SessionTouch
from controller.node.listeners import CommittedBatch, LeaderChange
from controller.raft.types import LogIndex, NodeId
from controller.service.client_port import ClientPort, fire
from controller.service.connection import ClientConnection, OutstandingLimit
from controller.service.forwarder import WriteForwarder
from controller.service.session_policy import SessionExpiryPolicy
from controller.service.watches import WatchTable
from controller.service.zk_reads import ZkReads, catch_up_events
from controller.zk.constants import XID_NOTIFICATION, Err, KeeperState
from controller.zk.protocol import encode_notification

if TYPE_CHECKING:
    from controller.node.config import NodeConfig
    from controller.node.server import ControllerNode

log = logging.getLogger(__name__)

TOUCH_INTERVAL_S = 0.1
EXPIRY_RECHECK_S = 1.0  # the expiry loop looks again at least this often
TTL_CHECK_S = 1.0


@attrs.frozen
class ZkSettings:
    """ZooKeeper-compatible limits and options (see docs/coordination.md)."""

    tick_time_ms: int = 2000
    min_session_timeout_ms: int = 0  # 0: 2 ticks
    max_session_timeout_ms: int = 0  # 0: 20 ticks
    max_client_cnxns: int = 0  # per client address; 0 = unlimited (ZooKeeper's default is 60)
    max_outstanding: int = MAX_OUTSTANDING_PER_CONNECTION  # per connection, then stop reading
    # ZooKeeper's globalOutstandingLimit: requests queued on this controller, all connections.
    global_outstanding_limit: int = GLOBAL_OUTSTANDING_LIMIT
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
        self.limit = OutstandingLimit(settings.global_outstanding_limit)
        self.forwarder = WriteForwarder(node, extended_types=settings.extended_types_enabled)
        self.port = ClientPort(self)
        self.expiry = SessionExpiryPolicy()
        # Background loops sleep on these instead of polling: an idle controller must cost
        # nothing (each trio wake-up is 0.1-0.3 ms of CPU here; see docs/performance.md).
        self._touch_wake = trio.Event()  # first touch since the last relay
        self._leader_wake = trio.Event()  # this controller became leader
        self._session_wake = trio.Event()  # a session was created (an earlier deadline)
        self._touched: set[int] = set()
        self._is_leader = False
        self._leader: NodeId | None = None
        # The tree and zxid as of the last entry applied here, for snapshot catch-up (the
        # machine mutates its tree in place, and a restore replaces it).
        self._seen_zxid = 0
        self._seen_tree = machine.tree
        self.latency_min = 0.0
        self.latency_max = 0.0
        self.latency_total = 0.0
        self.latency_count = 0
        self.packets_received = 0
        self.packets_sent = 0

    def count_sent(self) -> None:
        self.packets_sent += 1

    # ------------------------------------------------------------------ RaftListener

    def handle_commit(self, batch: CommittedBatch) -> None:
        for _entry, result in batch:
            if isinstance(result, Applied):
                self._on_applied(result)
        if batch:
            self._seen_zxid = batch[-1][0].zxid

    def handle_snapshot(self, index: LogIndex, zxid: int) -> None:
        """The tree jumped from `_seen_zxid` to `zxid` without its entries being applied
        here one by one. Watches are judged against the new tree as a reconnecting client's
        SetWatches would be (`catch_up_events`), so no change goes unnoticed; writes this
        controller handed to a leader fail at once with connection loss (their entries may
        be inside the snapshot, so their outcome is unknown here), as ZooKeeper clients
        expect of a server that resynchronised with its leader."""
        since, self._seen_zxid = self._seen_zxid, zxid
        before, self._seen_tree = self._seen_tree, self.machine.tree
        owed = catch_up_events(before, self.machine.tree, self.watches, since)
        for key, events in owed.items():
            conn = self.connections.get(key)
            if conn is not None and not conn.closing:
                for event_type, path in events:
                    fire(conn, event_type, path)
        self.forwarder.snapshot_installed()
        # Sessions that expired in the gap: their clients learn it when they reconnect.
        for sid in [sid for sid in self.by_session if sid not in self.machine.sessions]:
            for conn in list(self.by_session[sid]):
                conn.close()
        if self._is_leader:  # sessions the snapshot brought in get a full timeout
            self.expiry.adopt(self._timeouts(), trio.current_time())

    def handle_leader_change(self, change: LeaderChange) -> None:
        self._on_leader_change(change.role, change.leader_id)

    def _timeouts(self) -> dict[int, int]:
        return {sid: s.timeout_ms for sid, s in self.machine.sessions.items()}

    def _on_applied(self, result: Applied) -> None:
        for event_type, path in result.events:
            self._notify(event_type, path)
        if result.timeout_ms and result.session_id:  # a session was created
            self.expiry.touched(result.session_id, result.timeout_ms, trio.current_time())
            self._session_wake.set()
        if result.closed_session:
            self.expiry.closed(result.session_id)
        if result.origin == self.node.node_id:
            self.forwarder.applied(result)
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
            self.expiry.restart(self._timeouts(), trio.current_time())
        if leader_id != self._leader:
            self._leader = leader_id
            self.forwarder.leader_changed(leader_id)

    def on_peer_frame(self, src: NodeId, frame: ServiceFrame) -> None:
        if isinstance(frame, SessionTouch):
            if self._is_leader:
                now = trio.current_time()
                for sid in frame.session_ids:
                    session = self.machine.sessions.get(sid)
                    if session is not None:
                        self.expiry.touched(sid, session.timeout_ms, now)
        elif isinstance(frame, Forward):
            self.forwarder.on_forward(src, frame)
        else:
            assert isinstance(frame, ForwardFailed)
            self.forwarder.on_forward_failed(frame)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.forwarder.run)
            nursery.start_soon(self._relay_touches)
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
            elif self._leader is None or not self.node.send_peer(
                self._leader, SessionTouch(tuple(sorted(touched)))
            ):
                # No leader, or its link is full: keep them for the next round.
                self._touched |= touched
                self._touch_wake.set()

    async def _expire_sessions(self) -> None:
        while True:
            if not self._is_leader:
                self._leader_wake = trio.Event()
                await self._leader_wake.wait()
                continue
            # Sleep until the earliest deadline: touches only push deadlines later, and a
            # new session (the one way to add an earlier one) wakes us.
            now = trio.current_time()
            earliest = self.expiry.next_deadline()
            if earliest is None:
                earliest = now + EXPIRY_RECHECK_S
            self._session_wake = trio.Event()
            with trio.move_on_at(max(now, min(earliest, now + EXPIRY_RECHECK_S))):
                await self._session_wake.wait()
            if not self._is_leader:
                continue
            # Sessions this controller serves right now are alive by definition.
            now = trio.current_time()
            sessions = self.machine.sessions
            self.expiry.touched_all(
                ((sid, sessions[sid].timeout_ms) for sid in self._touched if sid in sessions),
                now,
            )
            for sid in self.expiry.due(now, sessions):
                log.info("session 0x%x expired", sid)
                self.forwarder.propose_decision(CloseSession(0, 0, sid, True))

    async def _expire_ttl_nodes(self) -> None:
        while True:
            if not self._is_leader:
                await self._leader_wake.wait()
                continue
            await trio.sleep(TTL_CHECK_S)
            if not self._is_leader:
                continue
            expired = self.machine.tree.expired_ttl_nodes(_now_ms())
            if expired:
                self.forwarder.propose_decision(ExpireTTL(tuple(expired)))

    # ------------------------------------------------------------------ public proposals

    async def open_session(self, timeout_ms: int) -> int:
        """Open a session for a component of this controller (the broker controller) and
        return its id. Raises `ServiceWriteError` if the log did not take it. The caller keeps
        it alive with `touch`."""
        password = os.urandom(16)
        node_id = self.node.node_id
        applied = await self.propose_command(
            lambda seq: CreateSession(node_id, seq, timeout_ms, password)
        )
        if applied.err:
            raise ServiceWriteError(applied.err, "could not open a session")
        return applied.session_id

    async def write(self, session_id: int, op: int, record: Any) -> Applied:
        """Propose one write request (a jute request record, e.g. a `MultiRequest`) as
        `session_id`, with superuser rights, and return its result once applied on this
        controller: the same typed transaction a client's request becomes. `Applied.err` is
        ZooKeeper's error code (CONNECTIONLOSS with zxid 0: outcome unknown, e.g. the leader
        changed)."""
        node_id = self.node.node_id
        return await self.propose_command(
            lambda seq: Write(node_id, seq, session_id, op, record, (("super", ""),))
        )

    async def propose_command(self, build: Callable[[int], Command]) -> Applied:
        """Propose the command `build(seq)` and wait until it is applied here."""
        done = trio.Event()
        box: list[Applied] = []

        def complete(result: Applied) -> None:
            box.append(result)
            done.set()

        self.forwarder.propose(build, complete)
        await done.wait()
        return box[0]

    # ------------------------------------------------------------------ notifications

    def _notify(self, event_type: int, path: str) -> None:
        keys = self.watches.trigger(event_type, path)
        if not keys:
            return
        frame = encode_notification(event_type, KeeperState.SYNC_CONNECTED, path, -1)
        for key in keys:
            conn = self.connections.get(key)  # type: ignore[call-overload]
            if conn is not None and not conn.closing:
                conn.push(frame)

    # ------------------------------------------------------------------ connections

    async def handle_client(
        self, stream: trio.abc.Stream, first: bytes, address: str | None = None
    ) -> None:
        """Serve one client connection whose first bytes are `first`; `address` names the
        client (taken from the socket when not given)."""
        if address is None:
            assert isinstance(stream, trio.SocketStream)
            peer = stream.socket.getpeername()
            address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        await self.port.serve(stream, first, address)

    def forget_connection(self, conn: ClientConnection) -> None:
        self.connections.pop(conn.id, None)
        self.watches.drop(conn.id)
        if conn.session_id:
            conns = self.by_session.get(conn.session_id)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.by_session[conn.session_id]

    def record_latency(self, started: float) -> None:
        ms = (time.monotonic() - started) * 1000
        if not self.latency_count or ms < self.latency_min:
            self.latency_min = ms
        self.latency_max = max(self.latency_max, ms)
        self.latency_total += ms
        self.latency_count += 1

    # ------------------------------------------------------------------ status

    def stats(self) -> dict[str, Any]:
        fwd = self.forwarder
        return {
            "connections": len(self.connections),
            "sessions": len(self.machine.sessions),
            "znodes": self.machine.tree.node_count,
            "watches": self.watches.count(),
            "ephemerals": sum(len(p) for p in self.machine.tree.ephemerals.values()),
            "tracked_sessions": self.expiry.tracked if self._is_leader else 0,
            "outstanding_requests": self.limit.count,
            "throttled_reads": self.limit.throttled,
            "leader_backlog": fwd.backlog,
            "leader_backlog_peak": fwd.backlog_peak,
            "forwards_failed": fwd.forwards_failed,
            "requests_failed": fwd.requests_failed,
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


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["XID_NOTIFICATION", "ClientConnection", "ZkService", "ZkSettings"]
