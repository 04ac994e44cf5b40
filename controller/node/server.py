"""`ControllerNode`: the trio shell that drives one `RaftCore`.

Tasks in the node's nursery:
- the Raft loop: drains the inbox (peer messages, ticks), hands pending proposals to the
  core, then runs the `Ready` host loop; a large append's storage I/O runs in a worker
  thread, and whatever arrives meanwhile is handled as one batch afterwards (group commit);
- turns inline: while the Raft loop is parked with nothing queued for it, whoever brings
  the input (a peer reader with its chunk's messages, the ticker, a client connection that
  queued writes) runs the same turn itself, synchronously: step, propose, Ready, a small
  append fsynced in place, send, apply. Each hop of a write thus costs no task switch
  beyond the one that read the socket: on a small VM a trio task switch costs 0.05-0.1 ms,
  and a lone client's write through a follower makes six hops. A turn that needs to wait
  (a large append, a snapshot) is handed to the Raft loop. Only one turn runs at a time
  (`_turn_busy`), and inline turns only run when nothing is queued for the loop, so the
  core sees its inputs in the order they arrived;
- the ticker, which turns the trio clock into Raft ticks; it sleeps until the next tick
  that can do something, so an idle controller does not wake every tick (`ticks.py`);
- one `PeerSender` per peer, and listeners for the Raft port and the client port
  (`inbound.py`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Protocol

import trio

from controller import limits
from controller.node.codec import (
    EntryBlobCache,
    Hello,
    ServiceFrame,
    encode_frame,
)
from controller.node.config import NodeConfig
from controller.node.inbound import serve_client, serve_peer
from controller.node.listeners import LeaderChange, RaftListener
from controller.node.peers import PeerSender
from controller.node.statemachine import KVStateMachine, StateMachine
from controller.node.status import node_status
from controller.node.ticks import TickClock, ticks_until_due, watch_ticks_for
from controller.raft.core import InitialState, NotLeader, RaftConfig, RaftCore
from controller.raft.messages import Message
from controller.raft.ready import Ready
from controller.raft.types import Entry, EntryKind, LogIndex, NodeId, Snapshot, Term
from controller.storage import FileStorage

log = logging.getLogger(__name__)

INBOX_CAPACITY = 8192
MAX_PENDING_PROPOSALS = limits.MAX_UNCOMMITTED_ENTRIES

Callback = Callable[[object, Entry | None, Exception | None], None]
"""Called once per proposal: (state machine result, applied entry, error)."""


class NodeService(Protocol):
    """The service on the node's client port (the ZooKeeper service). It learns about the
    log as one of the node's `listeners`; these calls must not block.
    """

    def on_peer_frame(self, src: NodeId, frame: ServiceFrame) -> None:
        """A service frame (Forward, ForwardFailed, SessionTouch) arrived from a peer."""

    async def handle_client(self, stream: trio.SocketStream, first: bytes) -> None:
        """Serve a client connection whose first four bytes are `first`."""

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None:
        """Background work (session expiry, relaying touches) for the node's lifetime."""

    def stats(self) -> dict[str, Any]:
        """Figures for `kraft quorum status`."""


class ProposalFailed(Exception):
    """The proposal did not commit as proposed; `leader` is a hint where to retry."""

    def __init__(self, message: str, leader: str = "") -> None:
        super().__init__(message)
        self.leader = leader


class _Ticks:
    """`count` ticks fired (handed over lazily, see `controller/node/ticks.py`)."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


class _Wake:
    pass


_WAKE = _Wake()


INLINE_PERSIST_MAX_ENTRIES = 8
INLINE_PERSIST_MAX_BYTES = 64 * 1024
SLOW_FSYNC_S = 0.005
"""An fsync slower than this means the disk is busy (e.g. a follower catching up writes
megabytes): fsyncs go to a worker thread for `SLOW_DISK_HOLD_S`."""
SLOW_DISK_HOLD_S = 1.0


def _small_append(rd: Ready) -> bool:
    """Only log entries, few and small: fsync them on the event loop."""
    if rd.snapshot is not None or rd.hard_state is not None:
        return False
    entries = rd.entries
    if len(entries) > INLINE_PERSIST_MAX_ENTRIES:
        return False
    return sum(len(e.data) for e in entries) <= INLINE_PERSIST_MAX_BYTES


class ControllerNode:
    """One controller: Raft core, durable log, peers, client port."""

    def __init__(
        self,
        config: NodeConfig,
        state_machine: StateMachine | None = None,
        *,
        client_handler: Callable[[ControllerNode, trio.SocketStream, bytes], Any] | None = None,
        service: NodeService | None = None,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.sm: StateMachine = state_machine or KVStateMachine()
        self.client_handler = client_handler  # for a client port without a service
        self.service = service
        # Told about every applied batch, snapshot and leader change, in this order.
        self.listeners: list[RaftListener] = []
        # Background tasks of components on the replicated state (the broker controller),
        # started in the node's nursery, and extra sections of `status()`.
        self.components: list[Callable[..., Any]] = []
        self.status_sources: dict[str, Callable[[], dict[str, Any]]] = {}
        self.last_zxid = 0  # zxid of the last applied entry (ZooKeeper's lastProcessedZxid)
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[Message | _Ticks | _Wake](
            INBOX_CAPACITY
        )
        self._pending: deque[tuple[bytes, Callback]] = deque()
        self._pending_room = trio.Event()
        self._poked = False
        # Turns (see the module docstring): a turn is running or handed to the Raft loop;
        # inputs queued for the loop and not yet handled; nesting of `batch()`; a proposal
        # queued inside a batch; a Ready an inline turn handed to the loop.
        self._turn_busy = False
        self._inbox_items = 0
        self._batch_depth = 0
        self._kick_due = False
        self._handoff: Ready | None = None
        self._slow_disk_until = 0.0  # time.monotonic(): fsync in a worker thread until then
        self._running_inline = False
        self.inline_turns = 0  # turns run by the task that brought the input
        self.loop_turns = 0  # turns run by the Raft loop task
        self._waiters: dict[LogIndex, tuple[Term, Callback]] = {}
        self._peers: dict[NodeId, PeerSender] = {}
        self.peer_client_addresses: dict[NodeId, str] = {}
        self.client_address = f"{config.client_host}:{config.client_port}"
        self.started = trio.Event()
        self.applied_event = trio.Event()  # replaced after each apply batch
        self._last_snapshot_index = 0
        self._catch_up_snapshot: Snapshot | None = None  # the log is compacted up to it next
        self._storage: FileStorage | None = None
        self._core: RaftCore | None = None
        self._clock = TickClock(limits.TICK_MS / 1000, 0.0)
        self._ticks_applied = 0
        self._tick_scope: trio.CancelScope | None = None
        self.leader_changes = 0
        self.fsyncs = 0
        self.snapshots_installed = 0
        self.snapshots_taken = 0

    # ------------------------------------------------------------------ public API

    @property
    def core(self) -> RaftCore:
        assert self._core is not None, "node not started"
        return self._core

    def leader_client_address(self) -> str:
        leader = self.core.leader_id
        if leader is None:
            return ""
        if leader == self.node_id:
            return self.client_address
        return self.peer_client_addresses.get(leader, "")

    def submit(self, command: bytes, callback: Callback) -> None:
        """Queue a proposal; `callback` runs once it is applied (or fails). Non-blocking:
        callers must first `await wait_for_room()`."""
        if not self.core.is_leader:
            callback(None, None, ProposalFailed("not the leader", self.leader_client_address()))
            return
        self._pending.append((command, callback))
        self._poke()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Proposals submitted inside are handed to the core together when the outermost
        batch ends: in a turn of the caller's own, when the Raft loop is idle. The body
        must not await (other tasks' proposals would wait for this batch to end)."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if not self._batch_depth and self._kick_due:
                self._kick_due = False
                if not self._run_turn(()):
                    self._poke()

    def send_peer(self, peer: NodeId, frame: ServiceFrame) -> bool:
        """Queue a service frame to a peer; False if it cannot be sent now (no connection,
        or the peer's queue is over its byte bound): the frame was not queued, and the caller
        keeps it to retry. A queued frame is lost only with its connection."""
        sender = self._peers.get(peer)
        if sender is None or not sender.connected:
            return False
        data = encode_frame(frame)
        if not sender.has_room(len(data)):
            return False
        sender.push(data)
        return sender.connected

    def peer_connected(self, peer: NodeId) -> bool:
        sender = self._peers.get(peer)
        return sender is not None and sender.connected

    def has_room(self) -> bool:
        """`submit` would not exceed the bound on queued proposals."""
        return len(self._pending) < MAX_PENDING_PROPOSALS

    async def wait_for_room(self) -> None:
        while len(self._pending) >= MAX_PENDING_PROPOSALS:
            self._pending_room = trio.Event()
            await self._pending_room.wait()

    async def propose(self, command: bytes) -> tuple[object, Entry]:
        """Propose and wait until applied here; raises ProposalFailed."""
        await self.wait_for_room()
        done = trio.Event()
        outcome: list[Any] = []

        def callback(result: object, entry: Entry | None, error: Exception | None) -> None:
            outcome.extend((result, entry, error))
            done.set()

        self.submit(command, callback)
        await done.wait()
        result, entry, error = outcome
        if error is not None:
            raise error
        return result, entry

    def status(self) -> dict[str, Any]:
        """The data behind `kraft quorum status` (JSON-friendly; `controller/node/status.py`)."""
        return node_status(self)

    def transfer_leadership(self) -> None:
        if self.core.is_leader:
            self.core.transfer_leadership()
            self._poke()

    # ------------------------------------------------------------------ run

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        storage, recovered = await trio.to_thread.run_sync(
            lambda: FileStorage.open(
                cfg.data_dir, cluster_id=cfg.cluster_id, node_id=cfg.node_id, fsync=cfg.fsync
            )
        )
        self._storage = storage
        if recovered.truncated_tail_bytes:
            log.warning(
                "recovered log: cut a torn tail of %d bytes", recovered.truncated_tail_bytes
            )
        if recovered.snapshot is not None:
            self.sm.restore(recovered.snapshot.data)
            self._last_snapshot_index = recovered.snapshot.meta.index
            self.last_zxid = recovered.snapshot.meta.zxid
            for listener in self.listeners:
                listener.handle_snapshot(recovered.snapshot.meta.index, self.last_zxid)
        raft_cfg = RaftConfig(
            node_id=cfg.node_id,
            voters=tuple(sorted(cfg.voters)),
            observers=tuple(sorted(cfg.observers)),
            election_ticks=cfg.election_ticks,
            heartbeat_ticks=cfg.heartbeat_ticks,
        )
        initial = InitialState(recovered.hard_state, recovered.snapshot, recovered.entries)
        self._core = RaftCore(raft_cfg, initial, random.Random())
        log.info(
            "node %d starting: term %d, log %d..%d, %s",
            cfg.node_id,
            recovered.hard_state.term,
            self._core.first_index,
            self._core.last_index,
            "fsync on" if cfg.fsync else "fsync OFF",
        )
        try:
            async with trio.open_nursery() as nursery:
                raft_addr = cfg.raft_address
                await nursery.start(trio.serve_tcp, partial(serve_peer, self), raft_addr.port)
                client_listeners = await nursery.start(
                    trio.serve_tcp,
                    partial(serve_client, self),
                    cfg.client_port,
                )
                port = client_listeners[0].socket.getsockname()[1]
                self.client_address = f"{cfg.client_host}:{port}"
                hello = Hello(cfg.cluster_id, cfg.node_id, self.client_address)
                for peer, addr in {**cfg.voters, **cfg.observers}.items():
                    if peer != cfg.node_id:
                        sender = PeerSender(peer, addr, hello)
                        self._peers[peer] = sender
                        nursery.start_soon(sender.run)
                self._clock = TickClock(
                    limits.TICK_MS / 1000,
                    trio.current_time(),
                    watch_ticks_for(cfg.heartbeat_ticks),
                )
                nursery.start_soon(self._ticker)
                nursery.start_soon(self._raft_loop)
                if self.service is not None:
                    await nursery.start(self.service.run)
                for component in self.components:
                    await nursery.start(component)
                self.started.set()
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(storage.close)

    # ------------------------------------------------------------------ raft loop

    def _poke(self) -> None:
        if self._batch_depth:
            self._kick_due = True  # the batch's end proposes it
            return
        if self._running_inline:
            return  # the inline turn in progress proposes it before it ends
        self._wake_loop()

    def _wake_loop(self) -> None:
        if self._poked:
            return  # one wake-up per loop turn is enough
        self._poked = True
        # If the inbox is full the loop is busy and will see the pending work anyway.
        with contextlib.suppress(trio.WouldBlock):
            self._inbox_send.send_nowait(_WAKE)
            self._inbox_items += 1

    def _run_turn(self, messages: Sequence[Message]) -> bool:
        """Run a turn here and now, synchronously: the ticks that fired, `messages`, pending
        proposals, and every Ready that needs no waiting. False (nothing done) when the Raft
        loop is in a turn or has inputs queued: the caller queues its inputs instead."""
        if self._turn_busy or self._inbox_items or self._core is None:
            return False
        core = self._core
        self._turn_busy = self._running_inline = True
        self.inline_turns += 1
        self._apply_ticks(self._clock.fire(trio.current_time()))
        for msg in messages:
            core.step(msg)
        while True:
            self._propose_pending()
            if not core.has_ready():
                break
            rd = core.ready()
            if not self._persist_in_place(rd):
                # This one waits for storage: the loop takes it over, and the turn with it.
                self._running_inline = False
                self._kick_due = False
                self._handoff = rd
                self._wake_loop()
                return True
            self._handle_ready_now(rd)
            core.advance(rd)
        self._running_inline = False
        self._kick_due = False
        if self._snapshot_due():
            self._wake_loop()  # the loop takes it (it writes the snapshot in a worker thread)
        self._plan_ticks()
        self._turn_busy = False
        return True

    async def _ticker(self) -> None:
        clock = self._clock
        while True:
            # The Raft loop moves this deadline (`_plan_ticks`) when the core's next due
            # tick changes; a wake-up before the current wake time (it moved later) only
            # goes back to sleep.
            with trio.CancelScope(deadline=clock.wake_time()) as scope:
                self._tick_scope = scope
                await trio.sleep_forever()
            if trio.current_time() >= clock.wake_time() and not self._run_turn(()):
                await self._push_ticks()

    async def _push_ticks(self) -> None:
        """Hand the loop the ticks that fired since the last call. Called by the ticker and,
        before queueing peer messages, by the peer readers: ticks and messages reach the
        core in the order they happened."""
        count = self._clock.fire(trio.current_time())
        if count:
            self._inbox_items += 1
            await self._inbox_send.send(_Ticks(count))

    def _plan_ticks(self) -> None:
        """Before the loop blocks: sleep until the next tick that can do something."""
        clock = self._clock
        clock.plan(self._ticks_applied, ticks_until_due(self.core), trio.current_time())
        scope = self._tick_scope
        if scope is not None:
            wake = clock.wake_time()
            # Earlier: always (a heartbeat is due). Later: not on every turn of a busy loop.
            if wake < scope.deadline or wake - scope.deadline > clock.period:
                scope.deadline = wake

    async def _raft_loop(self) -> None:
        core = self.core
        recv = self._inbox_recv
        while True:
            self._plan_ticks()
            self._turn_busy = False
            item = await recv.receive()
            self._turn_busy = True
            self.loop_turns += 1
            self._poked = False
            handoff, self._handoff = self._handoff, None
            if handoff is not None:
                await self._handle_ready(handoff)
                core.advance(handoff)
            self._handle_input(item)
            while True:
                # Everything that arrived meanwhile (follower acks above all) is stepped
                # before the next Ready, so commits are never starved by a stream of
                # proposals.
                for _ in range(INBOX_CAPACITY):
                    try:
                        item = recv.receive_nowait()
                    except trio.WouldBlock:
                        break
                    self._handle_input(item)
                self._poked = False
                self._propose_pending()
                if not core.has_ready():
                    break
                rd = core.ready()
                await self._handle_ready(rd)
                core.advance(rd)
            await self._maybe_snapshot()

    def _apply_ticks(self, count: int) -> None:
        tick = self.core.tick
        for _ in range(count):
            tick()
        self._ticks_applied += count

    def _handle_input(self, item: Message | _Ticks | _Wake) -> None:
        self._inbox_items -= 1
        assert self._inbox_items >= 0, self._inbox_items
        if type(item) is _Ticks:
            self._apply_ticks(item.count)
        elif item is _WAKE:
            pass
        else:
            assert not isinstance(item, _Ticks | _Wake)
            self.core.step(item)

    def _propose_pending(self) -> None:
        if not self._pending:
            return
        core = self.core
        if not core.is_leader:
            leader = self.leader_client_address()
            while self._pending:
                _, cb = self._pending.popleft()
                cb(None, None, ProposalFailed("not the leader", leader))
            self._pending_room.set()
            return
        room = core.proposal_room()
        if room <= 0:
            return
        n = min(room, len(self._pending), limits.MAX_APPEND_ENTRIES)
        batch = [self._pending.popleft() for _ in range(n)]
        try:
            last, _ = core.propose([cmd for cmd, _ in batch])
        except NotLeader:
            for _, cb in batch:
                cb(None, None, ProposalFailed("not the leader", self.leader_client_address()))
            return
        term = core.term
        first = last - n + 1
        for i, (_, cb) in enumerate(batch):
            self._waiters[first + i] = (term, cb)
        if len(self._pending) < MAX_PENDING_PROPOSALS:
            self._pending_room.set()

    def _persist_in_place(self, rd: Ready) -> bool:
        """Whether this Ready's storage work runs on the event loop, else in a worker thread.

        In place when it is cheap: with fsync off, or for a small append (`_small_append`)
        while recent fsyncs have been fast. An fsync waits for the file system's journal,
        which other processes' large writes can make slow (ext4's data=ordered flushes
        them first), and an event loop stopped that long sends no heartbeats: after one
        fsync slower than `SLOW_FSYNC_S`, fsyncs go to a worker thread for
        `SLOW_DISK_HOLD_S`. (Always in a thread, the leader's CPU per lone write rose
        from about 2.0 to 2.5-2.9 ms for the three controllers together, and lone writes
        fell by a third.)"""
        if rd.snapshot is not None:
            return False
        if not self.config.fsync:
            return True
        return _small_append(rd) and time.monotonic() >= self._slow_disk_until

    async def _handle_ready(self, rd: Ready) -> None:
        if not self._persist_in_place(rd):
            self._send(rd.early_messages)
            await trio.to_thread.run_sync(self._persist, rd)
            self._after_persist(rd)
        else:
            self._handle_ready_now(rd)

    def _handle_ready_now(self, rd: Ready) -> None:
        """A Ready whose storage work is small enough to do on the event loop: a small
        append's fsync (0.1-0.2 ms here) costs less than handing it to a worker thread and
        back (0.4-0.8 ms: thread wake-up, GIL hand-overs, the event loop's wake-up), and a
        lone client's write waits for it."""
        self._send(rd.early_messages)
        self._persist(rd)
        self._after_persist(rd)

    def _after_persist(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self.sm.restore(rd.snapshot.data)
            self._last_snapshot_index = rd.snapshot.meta.index
            self.last_zxid = rd.snapshot.meta.zxid
            self._fail_waiters_upto(rd.snapshot.meta.index)
            self.snapshots_installed += 1
            log.info("installed snapshot at index %d", rd.snapshot.meta.index)
            for listener in self.listeners:
                listener.handle_snapshot(rd.snapshot.meta.index, self.last_zxid)
        self._send(rd.messages)
        if rd.committed:
            self._apply(rd.committed)
        if rd.soft_state is not None:
            ss = rd.soft_state
            self.leader_changes += 1
            log.info(
                "node %d: %s in term %d, leader %s", self.node_id, ss.role, ss.term, ss.leader_id
            )
            change = LeaderChange(ss.leader_id, ss.term, ss.role, self._term_start(ss))
            for listener in self.listeners:
                listener.handle_leader_change(change)

    def _persist(self, rd: Ready) -> None:
        if not (rd.must_sync or rd.entries or rd.snapshot is not None or rd.hard_state is not None):
            return
        storage = self._storage
        assert storage is not None
        if rd.snapshot is not None:
            storage.install_snapshot(rd.snapshot)
        if rd.entries:
            storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.save_hard_state(rd.hard_state)
        if rd.must_sync:
            started = time.monotonic()
            storage.sync()
            self.fsyncs += 1
            done = time.monotonic()
            if done - started > SLOW_FSYNC_S:
                self._slow_disk_until = done + SLOW_DISK_HOLD_S

    def _send(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        if len(messages) == 1:
            msg = messages[0]
            sender = self._peers.get(msg.dst)
            if sender is not None:
                sender.push(encode_frame(msg))
            return
        cache: EntryBlobCache = {}
        frames: dict[NodeId, list[bytes]] = {}
        for msg in messages:
            frames.setdefault(msg.dst, []).append(encode_frame(msg, cache))
        for dst, batch in frames.items():
            sender = self._peers.get(dst)
            if sender is not None:
                sender.push_many(batch)

    def _term_start(self, ss: Any) -> LogIndex:
        """The index of the first entry of the leader's term (its no-op), when leader."""
        core = self.core
        if ss.role != "leader":
            return 0
        index = core.last_index
        while index > core.first_index and core.term_at(index - 1) == ss.term:
            index -= 1
        assert core.term_at(index) == ss.term, (index, ss.term)
        return index

    def _apply(self, entries: Sequence[Entry]) -> None:
        waiters = self._waiters
        batch: list[tuple[Entry, object]] = []
        for e in entries:
            result: object = None
            self.last_zxid = e.zxid
            if e.kind is EntryKind.COMMAND:
                result = self.sm.apply(e)
            batch.append((e, result))
            if not waiters:
                continue
            w = waiters.pop(e.index, None)
            if w is None:
                continue
            term, cb = w
            if e.term == term and e.kind is EntryKind.COMMAND:
                cb(result, e, None)
            else:
                cb(None, None, ProposalFailed("leadership changed before commit"))
        for listener in self.listeners:
            listener.handle_commit(batch)
        self.applied_event.set()
        self.applied_event = trio.Event()

    def _fail_waiters_upto(self, index: LogIndex) -> None:
        for i in [i for i in self._waiters if i <= index]:
            _, cb = self._waiters.pop(i)
            cb(None, None, ProposalFailed("replaced by a snapshot; outcome unknown"))

    def _snapshot_due(self) -> bool:
        interval = self.config.snapshot_interval_entries
        return self.core.applied_index - self._last_snapshot_index >= interval

    async def _maybe_snapshot(self) -> None:
        core = self.core
        if not self._snapshot_due():
            return
        meta = core.snapshot_meta(core.applied_index)
        snapshot = Snapshot(meta, self.sm.snapshot())
        storage = self._storage
        assert storage is not None
        await trio.to_thread.run_sync(storage.save_snapshot, snapshot)
        # The log is compacted to the *previous* snapshot, so a snapshot interval of entries
        # stays behind the new one (etcd keeps SnapshotCatchUpEntries for the same reason):
        # a follower slightly behind when the leader snapshots catches up from the log, not
        # by a snapshot install that would fail its clients' forwarded writes.
        previous, self._catch_up_snapshot = self._catch_up_snapshot, snapshot
        if previous is not None:
            core.compact(previous)
            await trio.to_thread.run_sync(storage.compact, previous.meta.index)
        self._last_snapshot_index = meta.index
        self.snapshots_taken += 1
        log.info("snapshot at index %d (%d bytes)", meta.index, len(snapshot.data))

    # ------------------------------------------------------------------ inputs

    def try_turn(self, messages: Sequence[Message]) -> bool:
        """Peer messages read from one chunk: stepped in a turn right here, in the caller's
        task, if the Raft loop is idle (True); else False and nothing was done."""
        return self._run_turn(messages)

    async def queue_messages(self, messages: Sequence[Message]) -> None:
        """Peer messages for the Raft loop, after the ticks that fired before them."""
        await self._push_ticks()
        for msg in messages:
            self._inbox_items += 1
            await self._inbox_send.send(msg)

    def peer_said_hello(self, hello: Hello) -> None:
        """A peer connected to us: note its client address, and stop waiting out the
        backoff before reconnecting to it."""
        self.peer_client_addresses[hello.node_id] = hello.client_address
        sender = self._peers.get(hello.node_id)
        if sender is not None:
            sender.peer_is_up()
