"""Gets coordination commands into the log and their results back (trio shell).

The controller that receives a client's write is its *origin*: it numbers the request
(`seq`), encodes the typed command, and hands it to the leader (itself, or a peer in a
`Forward` frame tagged with the leader's term). The leader stamps each command with its own
time (`controller/coord/commands.py`, `stamp`) and proposes it; the origin completes the
request when the entry is applied there.

Every queue is bounded and every refusal is explicit:
- a request is counted from `propose` until its result; the service stops reading client
  sockets while the count is at `global_outstanding_limit`, so at most that many requests
  per controller are queued here (unsent, sent, or waiting on the leader);
- the leader proposes while the node has room (`ControllerNode.has_room`); the rest waits
  in its backlog, which is bounded because every origin is (members x limit);
- a forward the leader cannot take (it is no longer the leader of that term) or whose entry
  it loses (leadership lost before commit) comes back at once in a `ForwardFailed` frame, and
  the origin fails those requests with connection loss. Forwards carry the term, and a
  leader never takes a later frame of a term it refused, so a session's writes that did apply
  are always a prefix of those it sent (ZooKeeper's FIFO client order);
- a frame the peer link cannot queue is kept and retried; one lost with its connection is
  failed by the stuck-write sweep after `STUCK_WRITE_S`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from controller.coord.commands import Applied, Command, Stamp, encode_command, stamp
from controller.limits import FORWARD_RETRY_S, MAX_FORWARD_BYTES, STUCK_WRITE_S
from controller.node.codec import Forward, ForwardFailed
from controller.raft.types import Entry, NodeId
from controller.zk.constants import Err

if TYPE_CHECKING:
    from controller.node.server import ControllerNode

log = logging.getLogger(__name__)

Done = Callable[[Applied], None]
_CONNECTIONLOSS = int(Err.CONNECTIONLOSS)


class WriteForwarder:
    """Origin and leader sides of getting commands into the log (see module docstring)."""

    def __init__(self, node: ControllerNode, *, extended_types: bool) -> None:
        self.node = node
        self.extended_types = extended_types
        # Sequence numbers match applied entries to waiting requests on the origin. They
        # start at the wall clock in nanoseconds, so a restarted controller re-applying its
        # previous incarnation's entries can never complete a new request with an old result.
        self._seq = itertools.count(time.time_ns())
        self._pending: dict[int, Done] = {}  # seq -> completion, until applied here or failed
        self._since: deque[tuple[float, int]] = deque()  # (proposed at, seq), in order
        self._unsent: deque[tuple[int, bytes]] = deque()  # not handed to a leader yet
        self._sent: dict[int, NodeId] = {}  # seq -> the leader it was handed to
        # Leader only: (origin, seq, command) waiting for room in the node's proposal queue.
        self._backlog: deque[tuple[NodeId, int, bytes]] = deque()
        self._failed_out: dict[NodeId, list[int]] = {}  # leader: seqs to report per origin
        self._refused_terms: dict[NodeId, int] = {}  # origin -> term whose frames we refuse
        self._deferred = False  # requests proposed with `defer`, not yet flushed
        self._wake = trio.Event()
        self._pending_wake = trio.Event()
        self._room_wake = trio.Event()
        self.forwards_failed = 0  # leader: forwarded commands reported back as failed
        self.requests_failed = 0  # origin: requests failed with connection loss
        self.backlog_peak = 0

    # ------------------------------------------------------------------ origin side

    @property
    def outstanding(self) -> int:
        """Requests of this controller not yet completed."""
        return len(self._pending)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def propose(self, build: Callable[[int], Command], done: Done, *, defer: bool = False) -> int:
        """Send `build(seq)` to the log and return its seq; `done` runs when it is applied
        here, or with `Applied(err=CONNECTIONLOSS, zxid=0)` when its outcome cannot be
        known. With `defer`, it is sent at the caller's next `flush_deferred()`."""
        seq = next(self._seq)
        self._pending[seq] = done
        self._since.append((trio.current_time(), seq))
        self._unsent.append((seq, encode_command(build(seq))))
        if defer:
            self._deferred = True
        else:
            self._wake.set()
        self._pending_wake.set()
        return seq

    def flush_deferred(self) -> None:
        """A client connection read all it had: send the requests it queued. With nothing of
        ours in flight (a lone client) they go at once, from this task, and on the leader
        into a turn of their own (`ControllerNode.batch`): no task switch on the way. With
        requests in flight they could not commit before those anyway, so the flush task
        sends them together with the other connections' (fewer, larger frames and
        appends)."""
        if not self._deferred:
            return
        self._deferred = False
        node = self.node
        if self._sent or self._failed_out or node.core.last_index > node.core.commit_index:
            self._wake.set()
            return
        with node.batch():
            self._send_unsent()
        if self._unsent:
            self._wake.set()  # no leader yet, or its link is full: the flush task retries

    def withdraw(self, seq: int) -> None:
        """The requester is gone (its connection closed after an earlier request failed):
        if the request was not handed to a leader yet, it never will be, so a session's
        applied writes stay a prefix of what it sent."""
        if seq in self._pending and seq not in self._sent:
            del self._pending[seq]

    def propose_decision(self, cmd: Command) -> None:
        """Leader only: a command no request waits for (session or TTL expiry)."""
        self._enqueue(self.node.node_id, 0, encode_command(cmd))

    def applied(self, result: Applied) -> None:
        """An entry this controller originated was applied here."""
        self._sent.pop(result.seq, None)
        done = self._pending.pop(result.seq, None)
        if done is not None:
            done(result)

    def _fail(self, seq: int) -> None:
        self._sent.pop(seq, None)
        done = self._pending.pop(seq, None)
        if done is not None:
            self.requests_failed += 1
            done(Applied(self.node.node_id, seq, 0, _CONNECTIONLOSS))

    def leader_changed(self, leader_id: NodeId | None) -> None:
        """Requests handed to another leader may be lost with it: fail them (outcome
        unknown, as in ZooKeeper). Those not sent yet go to the new leader. Commands in this
        controller's backlog never entered the log, but earlier ones of the same sessions may
        have been lost with the leadership, so they fail too (their origins hear at once)
        rather than apply after a gap."""
        if leader_id != self.node.node_id:
            for origin, seq, _ in self._backlog:
                if seq:
                    self._failed_out.setdefault(origin, []).append(seq)
            self._backlog.clear()
        for seq, sent_to in list(self._sent.items()):
            if sent_to != leader_id:
                self._fail(seq)
        self._wake.set()

    def snapshot_installed(self) -> None:
        """The tree jumped past entries this controller never applied one by one: requests
        handed to a leader may be among them, so their outcome is unknown here."""
        for seq in list(self._sent):
            self._fail(seq)

    def on_forward_failed(self, frame: ForwardFailed) -> None:
        for seq in frame.seqs:
            if seq in self._pending:
                log.info("request %d failed on the leader (error %d)", seq, frame.err)
                self._fail(seq)

    # ------------------------------------------------------------------ leader side

    def on_forward(self, src: NodeId, frame: Forward) -> None:
        core = self.node.core
        if (
            not core.is_leader
            or core.term != frame.term
            or self._refused_terms.get(src) == (frame.term)
        ):
            # Once one frame of a term is refused, every later one of that term is too, so
            # what a session's writes did apply stays a prefix of what it sent.
            self._refused_terms[src] = frame.term
            self._failed_out.setdefault(src, []).extend(seq for seq, _ in frame.commands)
            self._wake.set()
            return
        for seq, cmd in frame.commands:
            self._enqueue(src, seq, cmd)

    def _enqueue(self, origin: NodeId, seq: int, cmd: bytes) -> None:
        node = self.node
        if not self._backlog and node.has_room():
            node.submit(stamp(cmd, self._stamp()), self._on_submit_error(origin, seq))
            return
        self._backlog.append((origin, seq, cmd))
        self.backlog_peak = max(self.backlog_peak, len(self._backlog))
        self._room_wake.set()

    def _stamp(self) -> Stamp:
        return Stamp(int(time.time() * 1000), self.extended_types)

    def _on_submit_error(
        self, origin: NodeId, seq: int
    ) -> Callable[[object, Entry | None, Exception | None], None]:
        own = origin == self.node.node_id

        def callback(result: object, entry: Entry | None, error: Exception | None) -> None:
            if error is None or not seq:
                return
            if own:
                self._fail(seq)
            else:
                self._failed_out.setdefault(origin, []).append(seq)
                self._wake.set()

        return callback

    # ------------------------------------------------------------------ tasks

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flush)
            nursery.start_soon(self._drain_backlog)
            nursery.start_soon(self._sweep_stuck)

    async def _flush(self) -> None:
        while True:
            # Unsent requests (no leader yet, or its link is full or down) are retried every
            # FORWARD_RETRY_S; with nothing to send, only new work or a leader change wakes us.
            with trio.move_on_after(FORWARD_RETRY_S if self._unsent else float("inf")):
                await self._wake.wait()
            self._wake = trio.Event()
            await trio.lowlevel.checkpoint()  # let the other readers queue theirs too
            self._report_failures()
            if self._unsent:
                with self.node.batch():
                    self._send_unsent()

    def _report_failures(self) -> None:
        while self._failed_out:
            origin, seqs = self._failed_out.popitem()
            self.forwards_failed += len(seqs)
            if origin == self.node.node_id:
                for seq in seqs:
                    self._fail(seq)
            elif not self.node.send_peer(origin, ForwardFailed(tuple(seqs), _CONNECTIONLOSS)):
                log.info("could not report %d failed forwards to %d", len(seqs), origin)

    def _send_unsent(self) -> None:
        node = self.node
        unsent = self._unsent
        if node.core.is_leader:
            own = node.node_id
            while unsent:
                seq, cmd = unsent.popleft()
                if seq in self._pending:
                    self._sent[seq] = own
                    self._enqueue(own, seq, cmd)
            return
        leader = node.core.leader_id
        if leader is None or leader == node.node_id:
            return  # wait for a leader
        term = node.core.term
        while unsent:
            batch: list[tuple[int, bytes]] = []
            size = 0
            while unsent and size < MAX_FORWARD_BYTES:
                seq, cmd = unsent.popleft()
                if seq in self._pending:
                    batch.append((seq, cmd))
                    size += len(cmd)
            if not batch:
                return
            if not node.send_peer(leader, Forward(term, tuple(batch))):
                unsent.extendleft(reversed(batch))  # kept, in order, for the next try
                return
            self._sent.update((seq, leader) for seq, _ in batch)

    async def _drain_backlog(self) -> None:
        node = self.node
        while True:
            if not self._backlog:
                self._room_wake = trio.Event()
                await self._room_wake.wait()
                continue
            await node.wait_for_room()
            at = self._stamp()
            backlog = self._backlog
            while backlog and node.has_room():
                origin, seq, cmd = backlog.popleft()
                node.submit(stamp(cmd, at), self._on_submit_error(origin, seq))
            await trio.lowlevel.checkpoint()

    async def _sweep_stuck(self) -> None:
        """Fail requests whose entry never came back (a Forward frame lost with a broken
        peer connection): their clients see connection loss and retry instead of waiting
        forever."""
        while True:
            if not self._since:
                self._pending_wake = trio.Event()
                await self._pending_wake.wait()
            await trio.sleep(1.0)
            limit = trio.current_time() - STUCK_WRITE_S
            since = self._since
            while since and (since[0][0] <= limit or since[0][1] not in self._pending):
                _, seq = since.popleft()
                if seq in self._pending:
                    log.warning("request %d got no answer from the log in %ss", seq, STUCK_WRITE_S)
                    self._fail(seq)
