"""The sans-IO Raft state machine.

`RaftCore` takes inputs (`tick`, `step`, `propose`, `campaign`, `transfer_leadership`,
`compact`) and produces `Ready` batches; it never touches a socket, a file or a clock. The
shells (trio node, simulator) drive it with the loop documented in `controller.raft.ready`.

Message ordering rules the core relies on:
- Messages created while handling inputs go to `Ready.messages`, sent only after the Ready's
  entries and hard state are durable. The one exception is the leader's AppendRequests and
  HeartbeatRequests (`Ready.early_messages`): followers may persist in parallel with the
  leader because the leader counts its own log toward commit only after `advance()`.
- The protocol follows the Raft paper and thesis (pre-vote, check-quorum, leader lease,
  leadership transfer); see docs/raft.md.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Sequence

import attrs

from controller import limits
from controller.raft.log import RaftLog
from controller.raft.messages import (
    AppendRequest,
    AppendResponse,
    CommitNotice,
    HeartbeatRequest,
    HeartbeatResponse,
    Message,
    SnapshotRequest,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from controller.raft.ready import Ready, SoftState
from controller.raft.types import (
    ZXID_COUNTER_BITS,
    ZXID_COUNTER_MAX,
    Entry,
    EntryKind,
    HardState,
    LogIndex,
    NodeId,
    Snapshot,
    SnapshotMeta,
    Term,
    Zxid,
    make_zxid,
)


class Role(enum.StrEnum):
    """What this node currently does in the protocol."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"
    OBSERVER = "observer"


class PeerState(enum.StrEnum):
    """How the leader replicates to one peer (etcd's Progress states)."""

    PROBE = "probe"  # one append at a time until we find where the logs match
    REPLICATE = "replicate"  # optimistic pipelining, bounded by max_inflight_appends
    SNAPSHOT = "snapshot"  # streaming a snapshot, one chunk in flight


# Module-level aliases: enum member lookups through the class are slow on hot paths.
_FOLLOWER, _PRE_CANDIDATE, _CANDIDATE, _LEADER, _OBSERVER = (
    Role.FOLLOWER,
    Role.PRE_CANDIDATE,
    Role.CANDIDATE,
    Role.LEADER,
    Role.OBSERVER,
)
_PROBE, _REPLICATE, _SNAPSHOT = PeerState.PROBE, PeerState.REPLICATE, PeerState.SNAPSHOT


@attrs.frozen
class RaftConfig:
    """Static configuration of one Raft member. Times are in ticks."""

    node_id: NodeId
    voters: tuple[NodeId, ...]
    observers: tuple[NodeId, ...] = ()
    election_ticks: int = limits.ELECTION_TICKS
    heartbeat_ticks: int = limits.HEARTBEAT_TICKS
    pre_vote: bool = True
    check_quorum: bool = True
    max_inflight_appends: int = limits.MAX_INFLIGHT_APPENDS
    max_append_bytes: int = limits.MAX_APPEND_BYTES
    max_append_entries: int = limits.MAX_APPEND_ENTRIES
    max_uncommitted_entries: int = limits.MAX_UNCOMMITTED_ENTRIES
    snapshot_chunk_bytes: int = limits.SNAPSHOT_CHUNK_BYTES

    def __attrs_post_init__(self) -> None:
        assert self.voters, "at least one voter"
        assert len(set(self.voters)) == len(self.voters), self.voters
        assert not set(self.voters) & set(self.observers), (self.voters, self.observers)
        assert self.heartbeat_ticks >= 1
        assert self.election_ticks > self.heartbeat_ticks
        assert self.max_inflight_appends >= 1
        assert self.max_append_entries >= 1
        assert self.max_uncommitted_entries >= 1
        assert self.snapshot_chunk_bytes >= 1


@attrs.frozen
class InitialState:
    """What storage recovered: empty for a brand-new node."""

    hard_state: HardState = attrs.field(factory=HardState)
    snapshot: Snapshot | None = None
    entries: tuple[Entry, ...] = ()


@attrs.frozen
class PeerStatus:
    """The leader's view of one peer, for `kraft quorum status`."""

    match_index: LogIndex
    next_index: LogIndex
    state: str
    inflight: int
    last_contact_ticks: int
    is_voter: bool


class NotLeader(Exception):
    """A proposal reached a node that is not the leader."""

    def __init__(self, leader_id: NodeId | None) -> None:
        super().__init__(f"not the leader (leader is {leader_id})")
        self.leader_id = leader_id


class ProposalsBlocked(Exception):
    """The leader cannot take proposals now (transferring, or too much uncommitted work)."""


class _Progress:
    """Leader-side replication state of one peer."""

    __slots__ = (
        "commit_sent",
        "inflight",
        "is_voter",
        "last_contact",
        "match",
        "match_at_heartbeat",
        "next",
        "paused",
        "recent_active",
        "snap_meta",
        "snap_offset",
        "stale_heartbeats",
        "state",
    )

    def __init__(self, next_index: LogIndex, is_voter: bool) -> None:
        self.match: LogIndex = 0
        self.next: LogIndex = next_index
        self.state = _PROBE
        # Last index carried by each unacknowledged pipelined append, oldest first.
        self.inflight: deque[LogIndex] = deque()
        self.paused = False  # probe/snapshot: a message is out, wait for an answer
        self.recent_active = True
        self.last_contact = 0
        self.stale_heartbeats = 0
        self.match_at_heartbeat: LogIndex = 0
        # The highest commit index any message sent to this peer let it adopt.
        self.commit_sent: LogIndex = 0
        self.snap_meta: SnapshotMeta | None = None
        self.snap_offset = 0
        self.is_voter = is_voter


class RaftCore:
    """One Raft member as a deterministic state machine (see the module docstring)."""

    def __init__(self, config: RaftConfig, initial: InitialState, rng: random.Random) -> None:
        self.config = config
        self._rng = rng
        self._id = config.node_id
        self._voters = tuple(sorted(config.voters))
        self._observers = tuple(sorted(config.observers))
        self._is_voter = self._id in self._voters
        self._quorum = len(self._voters) // 2 + 1

        snap = initial.snapshot
        if snap is not None:
            self._log = RaftLog(snap.meta.index, snap.meta.term, snap.meta.zxid, initial.entries)
        else:
            self._log = RaftLog(0, 0, 0, initial.entries)
        self._snapshot: Snapshot | None = snap  # latest durable snapshot, sent to laggards

        self._term: Term = initial.hard_state.term
        self._voted_for: NodeId | None = initial.hard_state.voted_for
        self._persisted_hs = initial.hard_state
        assert self._log.last_term <= self._term, (self._log.last_term, self._term)

        self.commit_index: LogIndex = self._log.snap_index
        self.applied_index: LogIndex = self._log.snap_index

        self._role = _FOLLOWER if self._is_voter else _OBSERVER
        self._leader_id: NodeId | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = 0
        self._failed_elections = 0
        self._votes: dict[NodeId, bool] = {}
        self._progress: dict[NodeId, _Progress] = {}
        self._term_start_index: LogIndex = 0  # index of this leader's no-op
        self._transfer_target: NodeId | None = None
        self._transfer_elapsed = 0
        self._elections_started = 0

        # Follower-side snapshot being received in chunks.
        self._incoming_meta: SnapshotMeta | None = None
        self._incoming_buf = bytearray()
        self._pending_snapshot: Snapshot | None = None

        self._msgs: list[Message] = []
        self._early: list[Message] = []
        self._need_broadcast = False
        self._commit_dirty = False
        self._last_soft: SoftState | None = None
        self._ready_out = False

        self._reset_randomized_timeout()

    # ------------------------------------------------------------------ status

    @property
    def node_id(self) -> NodeId:
        return self._id

    @property
    def term(self) -> Term:
        return self._term

    @property
    def role(self) -> str:
        return str(self._role)

    @property
    def leader_id(self) -> NodeId | None:
        return self._leader_id

    @property
    def last_index(self) -> LogIndex:
        return self._log.last_index

    @property
    def last_term(self) -> Term:
        return self._log.last_term

    @property
    def first_index(self) -> LogIndex:
        return self._log.first_index

    @property
    def voters(self) -> tuple[NodeId, ...]:
        return self._voters

    @property
    def observers(self) -> tuple[NodeId, ...]:
        return self._observers

    @property
    def voted_for(self) -> NodeId | None:
        return self._voted_for

    @property
    def is_leader(self) -> bool:
        return self._role is _LEADER

    @property
    def transferring(self) -> bool:
        return self._transfer_target is not None

    def elections_started(self) -> int:
        return self._elections_started

    def term_at(self, index: LogIndex) -> Term | None:
        return self._log.term_at(index)

    def zxid_at(self, index: LogIndex) -> Zxid | None:
        return self._log.zxid_at(index)

    def entries(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        """Entries [lo, hi] still held in memory (for tests and the simulator's checks)."""
        return self._log.slice(lo, hi, 1 << 62)

    def snapshot_meta(self, index: LogIndex) -> SnapshotMeta:
        """Metadata for a state-machine snapshot taken after applying `index`."""
        assert index <= self.applied_index, (index, self.applied_index)
        term, zxid = self._log.term_at(index), self._log.zxid_at(index)
        assert term is not None and zxid is not None, index
        return SnapshotMeta(index, term, zxid, self._voters, self._observers)

    def progress(self) -> dict[NodeId, PeerStatus]:
        if self._role is not _LEADER:
            return {}
        return {
            peer: PeerStatus(
                pr.match, pr.next, str(pr.state), len(pr.inflight), pr.last_contact, pr.is_voter
            )
            for peer, pr in self._progress.items()
        }

    def ticks_until_due(self) -> int | None:
        """How many `tick()` calls, with no other input, until one of them may act (send a
        heartbeat, end a check-quorum round, abort a leadership transfer, start an
        election); None if no tick ever will (an observer). At least 1.

        Lets the shell sleep instead of delivering ticks that only count (an idle
        controller then costs no CPU); the ticks must still all be delivered, in order with
        the other inputs, before the due one."""
        cfg = self.config
        if self._role is _LEADER:
            due = min(
                cfg.heartbeat_ticks - self._heartbeat_elapsed,
                cfg.election_ticks - self._election_elapsed,
            )
            if self._transfer_target is not None:
                due = min(due, cfg.election_ticks - self._transfer_elapsed)
        elif self._is_voter:
            due = self._randomized_timeout - self._election_elapsed
        else:
            return None
        return max(1, due)

    def proposal_room(self) -> int:
        if self._role is not _LEADER or self._transfer_target is not None:
            return 0
        uncommitted = self._log.last_index - self.commit_index
        return max(0, self.config.max_uncommitted_entries - uncommitted)

    # ------------------------------------------------------------------ inputs

    def tick(self) -> None:
        """Advance logical time by one tick."""
        if self._role is _LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now (skipping pre-vote), if this node may vote."""
        if self._is_voter and self._role is not _LEADER:
            self._become_candidate(transfer=False)

    def propose(self, commands: Sequence[bytes]) -> tuple[LogIndex, Zxid]:
        """Append one COMMAND entry per item; returns (index, zxid) of the last one."""
        assert commands, "empty proposal"
        if self._role is not _LEADER:
            raise NotLeader(self._leader_id)
        if self._transfer_target is not None:
            raise ProposalsBlocked("leadership transfer in progress")
        if len(commands) > self.proposal_room():
            raise ProposalsBlocked(
                f"too many uncommitted entries ({self._log.last_index - self.commit_index})"
            )
        index = self._log.last_index
        counter = index + len(commands) - self._term_start_index
        if counter > ZXID_COUNTER_MAX:
            # ZooKeeper semantics: the epoch must change before the counter wraps.
            self._become_follower(self._term, None)
            raise NotLeader(None)
        term = self._term
        start = self._term_start_index
        assert index + 1 - start > 0 and counter <= ZXID_COUNTER_MAX
        base = (term << ZXID_COUNTER_BITS) - start  # zxid = base + index (make_zxid inlined)
        kind = EntryKind.COMMAND
        new = [
            Entry(term, index + i, base + index + i, kind, data)
            for i, data in enumerate(commands, 1)
        ]
        self._log.append(new)
        self._need_broadcast = True
        last = new[-1]
        return last.index, last.zxid

    def transfer_leadership(self, target: NodeId | None = None) -> None:
        """Hand leadership to `target` (or the most caught-up voter) and stop proposals."""
        if self._role is not _LEADER:
            raise NotLeader(self._leader_id)
        candidates = [v for v in self._voters if v != self._id]
        if not candidates:
            return
        if target is None:
            target = max(candidates, key=lambda v: (self._progress[v].match, -v))
        assert target in candidates, target
        self._transfer_target = target
        self._transfer_elapsed = 0
        pr = self._progress[target]
        if pr.match == self._log.last_index:
            self._send(TimeoutNow(self._term, self._id, target))
        else:
            self._send_append(target)

    def compact(self, snapshot: Snapshot) -> None:
        """The state machine was snapshotted durably at `snapshot.meta.index`."""
        meta = snapshot.meta
        assert meta.index <= self.applied_index, (meta.index, self.applied_index)
        if meta.index <= self._log.snap_index:
            return
        self._log.compact(meta.index, meta.term, meta.zxid)
        self._snapshot = snapshot

    def step(self, msg: Message) -> None:
        """Handle one message addressed to this node."""
        assert not self._ready_out, "step() between ready() and advance()"
        assert msg.dst == self._id, (msg.dst, self._id)
        if msg.src == self._id:
            return
        if msg.term > self._term:
            if isinstance(msg, VoteRequest):
                if not msg.transfer and self._in_lease():
                    # Leader lease: we heard from a live leader recently; a disruptive
                    # candidate (e.g. rejoining after a partition) must not depose it.
                    return
                if msg.pre_vote:
                    self._handle_vote_request(msg)
                    return
                self._become_follower(msg.term, None, keep_timer=True)
            elif isinstance(msg, VoteResponse) and msg.pre_vote and msg.granted:
                pass  # a granted pre-vote echoes the term we would campaign at
            elif isinstance(msg, AppendRequest | HeartbeatRequest | SnapshotRequest | CommitNotice):
                self._become_follower(msg.term, msg.src)
            else:
                self._become_follower(msg.term, None, keep_timer=True)
        elif msg.term < self._term:
            self._step_stale(msg)
            return
        self._touch(msg.src)
        if isinstance(msg, AppendRequest):
            self._handle_append(msg)
        elif isinstance(msg, AppendResponse):
            self._handle_append_response(msg)
        elif isinstance(msg, HeartbeatRequest):
            self._handle_heartbeat(msg)
        elif isinstance(msg, HeartbeatResponse):
            self._handle_heartbeat_response(msg)
        elif isinstance(msg, VoteRequest):
            self._handle_vote_request(msg)
        elif isinstance(msg, VoteResponse):
            self._handle_vote_response(msg)
        elif isinstance(msg, SnapshotRequest):
            self._handle_snapshot(msg)
        elif isinstance(msg, SnapshotResponse):
            self._handle_snapshot_response(msg)
        elif isinstance(msg, CommitNotice):
            self._follow(msg.src)
            if msg.commit > self.commit_index:
                self.commit_index = min(msg.commit, self._log.last_index)
        else:
            assert isinstance(msg, TimeoutNow), msg
            self._handle_timeout_now(msg)

    # ------------------------------------------------------------------ outputs

    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._early
            or self._need_broadcast
            or self._commit_dirty
            or self._log.unstable_from <= self._log.last_index
            or self._pending_snapshot is not None
            or self._hard_state() != self._persisted_hs
            or self._committable_to() > self.applied_index
            or self._soft_state() != self._last_soft
        )

    def ready(self) -> Ready:
        assert not self._ready_out, "ready() twice without advance()"
        if self._role is _LEADER:
            if self._need_broadcast:
                self._broadcast_append()
            if self._commit_dirty:
                self._notify_commit()
        self._need_broadcast = False
        self._commit_dirty = False
        log = self._log
        entries: tuple[Entry, ...] = ()
        if log.unstable_from <= log.last_index:
            entries = tuple(log.entries[log.unstable_from - log.snap_index - 1 :])
        hs = self._hard_state()
        hard_state = hs if hs != self._persisted_hs else None
        snapshot = self._pending_snapshot
        start = self.applied_index + 1 if snapshot is None else snapshot.meta.index + 1
        upto = self._committable_to()
        committed: tuple[Entry, ...] = ()
        if upto >= start:
            committed = tuple(log.slice(start, upto, 1 << 62))
        early, messages = self._early, self._msgs
        if hard_state is not None:
            # A leader that has not yet made its term durable must not speak first.
            early, messages = [], early + messages
        soft = self._soft_state()
        rd = Ready(
            hard_state=hard_state,
            entries=entries,
            snapshot=snapshot,
            early_messages=tuple(early),
            messages=tuple(messages),
            committed=committed,
            commit_index=self.commit_index,
            must_sync=bool(entries) or hard_state is not None or snapshot is not None,
            soft_state=soft if soft != self._last_soft else None,
        )
        self._early, self._msgs = [], []
        self._ready_out = True
        return rd

    def advance(self, rd: Ready) -> None:
        assert self._ready_out, "advance() without ready()"
        self._ready_out = False
        log = self._log
        if rd.snapshot is not None:
            assert self._pending_snapshot is rd.snapshot
            self._pending_snapshot = None
            self._snapshot = rd.snapshot
            self.applied_index = max(self.applied_index, rd.snapshot.meta.index)
        if rd.hard_state is not None:
            self._persisted_hs = rd.hard_state
        if rd.entries:
            last = rd.entries[-1]
            # The entries may have been truncated by nothing in between (strict alternation),
            # so the durable prefix now reaches the batch's last index.
            assert log.term_at(last.index) == last.term, (last, log.term_at(last.index))
            log.persisted_index = max(log.persisted_index, last.index)
            log.unstable_from = max(log.unstable_from, last.index + 1)
        if rd.committed:
            assert rd.committed[0].index == self.applied_index + 1, (
                rd.committed[0].index,
                self.applied_index,
            )
            self.applied_index = rd.committed[-1].index
        if rd.soft_state is not None:
            self._last_soft = rd.soft_state
        if self._role is _LEADER and rd.entries:
            self._maybe_commit()

    # ------------------------------------------------------------------ helpers

    def _hard_state(self) -> HardState:
        return HardState(self._term, self._voted_for)

    def _soft_state(self) -> SoftState:
        return SoftState(self._leader_id, str(self._role), self._term)

    def _committable_to(self) -> LogIndex:
        # Entries in the same Ready are persisted before they are applied (host loop order).
        return min(self.commit_index, self._log.last_index)

    def _send(self, msg: Message, *, early: bool = False) -> None:
        (self._early if early else self._msgs).append(msg)

    def _peers(self) -> list[NodeId]:
        return [p for p in self._voters + self._observers if p != self._id]

    def _in_lease(self) -> bool:
        if not self.config.check_quorum:
            return False
        if self._role is _LEADER:
            return True
        return self._leader_id is not None and self._election_elapsed < self.config.election_ticks

    def _touch(self, src: NodeId) -> None:
        pr = self._progress.get(src) if self._role is _LEADER else None
        if pr is not None:
            pr.recent_active = True
            pr.last_contact = 0

    def _reset_randomized_timeout(self) -> None:
        et = self.config.election_ticks
        # Election backoff: repeated failed elections widen the window (up to 4x) so that
        # competing candidates stop colliding; hearing from a leader resets it.
        factor = min(4.0, 1.0 + 0.5 * self._failed_elections)
        self._randomized_timeout = int(self._rng.randrange(et, 2 * et) * factor)

    def _reset(self, term: Term, *, keep_timer: bool = False) -> None:
        if term != self._term:
            self._term = term
            self._voted_for = None
        self._leader_id = None
        if not keep_timer:
            self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._votes = {}
        self._transfer_target = None
        self._progress = {}
        self._reset_randomized_timeout()

    def _become_follower(
        self, term: Term, leader: NodeId | None, *, keep_timer: bool = False
    ) -> None:
        """Follow `leader` (None: not known yet) in `term`.

        `keep_timer`: a higher term learned from a candidate or a response, not from a
        leader. The Raft paper (Figure 2) restarts the election timer only on hearing from
        the current leader or on granting a vote; restarting it here would let a node that
        can never win (its log is behind) hold off, forever, the nodes that could."""
        assert term >= self._term, (term, self._term)
        if self._role is _LEADER:
            keep_timer = False  # its elapsed counted check-quorum rounds, not silence
        self._reset(term, keep_timer=keep_timer)
        self._role = _FOLLOWER if self._is_voter else _OBSERVER
        self._leader_id = leader
        if leader is not None:
            self._failed_elections = 0
            self._reset_randomized_timeout()

    def _become_pre_candidate(self) -> None:
        assert self._is_voter and self._role is not _LEADER
        # Pre-vote does not touch term or vote: a partitioned node cannot inflate terms.
        self._role = _PRE_CANDIDATE
        self._leader_id = None
        self._votes = {self._id: True}
        self._election_elapsed = 0
        self._reset_randomized_timeout()
        if self._won(self._votes):
            self._become_candidate(transfer=False)
            return
        for v in self._voters:
            if v != self._id:
                self._send(
                    VoteRequest(
                        self._term + 1,
                        self._id,
                        v,
                        self._log.last_index,
                        self._log.last_term,
                        pre_vote=True,
                    )
                )

    def _become_candidate(self, *, transfer: bool) -> None:
        assert self._is_voter and self._role is not _LEADER
        self._elections_started += 1
        self._reset(self._term + 1)
        self._role = _CANDIDATE
        self._voted_for = self._id
        self._votes = {self._id: True}
        if self._won(self._votes):
            self._become_leader()
            return
        for v in self._voters:
            if v != self._id:
                self._send(
                    VoteRequest(
                        self._term,
                        self._id,
                        v,
                        self._log.last_index,
                        self._log.last_term,
                        transfer=transfer,
                    )
                )

    def _become_leader(self) -> None:
        assert self._role is _CANDIDATE, self._role
        self._role = _LEADER
        self._leader_id = self._id
        self._failed_elections = 0
        self._heartbeat_elapsed = 0
        self._election_elapsed = 0
        nxt = self._log.last_index + 1
        self._progress = {
            p: _Progress(nxt, p in self._voters) for p in self._voters + self._observers
        }
        me = self._progress[self._id]
        me.match, me.next = self._log.persisted_index, nxt
        self._term_start_index = nxt
        noop = Entry(self._term, nxt, make_zxid(self._term, 0), EntryKind.NOOP, b"")
        self._log.append([noop])
        self._need_broadcast = True

    def _won(self, votes: dict[NodeId, bool]) -> bool:
        return sum(1 for v in self._voters if votes.get(v)) >= self._quorum

    def _lost(self, votes: dict[NodeId, bool]) -> bool:
        return sum(1 for v in self._voters if votes.get(v) is False) >= self._quorum

    # ------------------------------------------------------------------ ticks

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if not self._is_voter:
            return
        if self._election_elapsed >= self._randomized_timeout:
            if self._role in (_PRE_CANDIDATE, _CANDIDATE):
                self._failed_elections += 1
            self._election_elapsed = 0
            if self.config.pre_vote:
                self._become_pre_candidate()
            else:
                self._become_candidate(transfer=False)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        for pr in self._progress.values():
            pr.last_contact += 1
        if self._transfer_target is not None:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= self.config.election_ticks:
                self._transfer_target = None  # abort: the target did not take over in time
        if self._election_elapsed >= self.config.election_ticks:
            self._election_elapsed = 0
            if self.config.check_quorum:
                active = {p for p, pr in self._progress.items() if pr.recent_active}
                active.add(self._id)
                if sum(1 for v in self._voters if v in active) < self._quorum:
                    self._become_follower(self._term, None)
                    return
            for p, pr in self._progress.items():
                pr.recent_active = p == self._id
        if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            for p in self._peers():
                self._send_heartbeat(p)

    # ------------------------------------------------------------------ leader sending

    def _broadcast_append(self) -> None:
        for p in self._peers():
            self._send_append(p)

    def _notify_commit(self) -> None:
        # Followers apply (and answer their clients) only once they learn the commit index.
        # Tell each one as soon as it may learn more: when the commit moves, and when a
        # slower follower's ack arrives after the commit already passed its old match.
        # Appends sent in this Ready already carry the commit, so this runs after them.
        commit = self.commit_index
        for p in self._peers():
            pr = self._progress[p]
            known = min(pr.match, commit)
            if known > pr.commit_sent:
                pr.commit_sent = known
                self._send(CommitNotice(self._term, self._id, p, known), early=True)

    def _send_heartbeat(self, p: NodeId) -> None:
        pr = self._progress[p]
        # Clamped to what the peer is known to hold: beyond its match index its log may
        # still contain entries of an older term that the leader never sent.
        commit = min(pr.match, self.commit_index)
        pr.commit_sent = max(pr.commit_sent, commit)
        self._send(HeartbeatRequest(self._term, self._id, p, commit), early=True)

    def _send_append(self, p: NodeId) -> None:
        """Send what `p` needs next, respecting its state and the in-flight bound."""
        pr = self._progress[p]
        log = self._log
        cfg = self.config
        while True:
            if pr.state is _SNAPSHOT or pr.paused:
                return
            if pr.state is _REPLICATE and (
                len(pr.inflight) >= cfg.max_inflight_appends or pr.next > log.last_index
            ):
                return
            prev_index = pr.next - 1
            prev_term = log.term_at(prev_index)
            if prev_term is None:
                self._start_snapshot(p, pr)
                return
            hi = min(log.last_index, prev_index + cfg.max_append_entries)
            batch = log.slice(pr.next, hi, cfg.max_append_bytes) if hi >= pr.next else []
            self._send(
                AppendRequest(
                    self._term, self._id, p, prev_index, prev_term, tuple(batch), self.commit_index
                ),
                early=True,
            )
            # The follower adopts the commit up to the last index this append proves.
            pr.commit_sent = max(pr.commit_sent, min(self.commit_index, prev_index + len(batch)))
            if pr.state is _PROBE:
                pr.paused = True
                return
            last = batch[-1].index
            pr.next = last + 1
            pr.inflight.append(last)

    def _start_snapshot(self, p: NodeId, pr: _Progress) -> None:
        snap = self._snapshot
        assert snap is not None and snap.meta.index == self._log.snap_index, "no snapshot to send"
        pr.state = _SNAPSHOT
        pr.inflight.clear()
        pr.snap_meta = snap.meta
        pr.snap_offset = 0
        self._send_snapshot_chunk(p, pr)

    def _send_snapshot_chunk(self, p: NodeId, pr: _Progress) -> None:
        snap = self._snapshot
        assert snap is not None
        if pr.snap_meta != snap.meta:
            pr.snap_meta, pr.snap_offset = snap.meta, 0  # we compacted again: restart
        size = self.config.snapshot_chunk_bytes
        chunk = snap.data[pr.snap_offset : pr.snap_offset + size]
        done = pr.snap_offset + len(chunk) >= len(snap.data)
        self._send(
            SnapshotRequest(self._term, self._id, p, snap.meta, pr.snap_offset, chunk, done),
            early=True,
        )
        pr.paused = True

    def _maybe_commit(self) -> None:
        assert self._role is _LEADER
        me = self._progress[self._id]
        me.match = self._log.persisted_index
        matches = sorted((self._progress[v].match for v in self._voters), reverse=True)
        candidate = matches[self._quorum - 1]
        # Raft §5.4.2: only entries of the current term commit by counting replicas.
        if candidate > self.commit_index and self._log.term_at(candidate) == self._term:
            self.commit_index = candidate
            self._commit_dirty = True

    # ------------------------------------------------------------------ handlers

    def _step_stale(self, msg: Message) -> None:
        if isinstance(msg, AppendRequest | HeartbeatRequest | SnapshotRequest):
            # Tell a deposed leader about the new term so it steps down (with pre-vote and
            # check-quorum, it may otherwise never hear of it).
            self._send(AppendResponse(self._term, self._id, msg.src, False, 0))
        elif isinstance(msg, VoteRequest) and msg.pre_vote:
            self._send(VoteResponse(self._term, self._id, msg.src, False, pre_vote=True))

    def _handle_vote_request(self, msg: VoteRequest) -> None:
        up_to_date = self._log.is_up_to_date(msg.last_index, msg.last_term)
        if msg.pre_vote:
            grant = (
                self._is_voter
                and msg.term > self._term
                and up_to_date
                and (msg.transfer or not self._in_lease())
            )
            term = msg.term if grant else self._term
            self._send(VoteResponse(term, self._id, msg.src, grant, pre_vote=True))
            return
        assert msg.term == self._term
        grant = (
            self._is_voter
            and self._role is not _LEADER
            and self._voted_for in (None, msg.src)
            and up_to_date
        )
        if grant:
            self._voted_for = msg.src
            self._election_elapsed = 0
        self._send(VoteResponse(self._term, self._id, msg.src, grant))

    def _handle_vote_response(self, msg: VoteResponse) -> None:
        if msg.pre_vote:
            if self._role is not _PRE_CANDIDATE:
                return
            self._votes[msg.src] = msg.granted
            if self._won(self._votes):
                self._become_candidate(transfer=False)
            elif self._lost(self._votes):
                self._failed_elections += 1
                self._become_follower(self._term, None)
            return
        if self._role is not _CANDIDATE:
            return
        self._votes[msg.src] = msg.granted
        if self._won(self._votes):
            self._become_leader()
        elif self._lost(self._votes):
            self._failed_elections += 1
            self._become_follower(self._term, None)

    def _follow(self, src: NodeId) -> None:
        """A message from this term's leader: adopt it and reset the election timer."""
        assert self._role is not _LEADER, f"two leaders in term {self._term}"
        if self._role in (_CANDIDATE, _PRE_CANDIDATE):
            self._become_follower(self._term, src)
        if self._leader_id != src:
            self._leader_id = src
            self._failed_elections = 0
        self._election_elapsed = 0

    def _handle_append(self, msg: AppendRequest) -> None:
        self._follow(msg.src)
        log = self._log
        prev_index, entries = msg.prev_index, msg.entries
        if prev_index < self.commit_index:
            # Everything up to our commit index already matches the leader; skip it (this also
            # covers a prefix we compacted away).
            skip = self.commit_index - prev_index
            entries = entries[skip:]
            prev_index = self.commit_index
        elif log.term_at(prev_index) != msg.prev_term:
            hint = min(prev_index, log.last_index)
            while hint > self.commit_index:
                t = log.term_at(hint)
                if t is not None and t <= msg.prev_term:
                    break
                hint -= 1
            hint_term = log.term_at(hint) or 0
            # On rejection, match_index carries the rejected prev_index.
            self._send(
                AppendResponse(
                    self._term, self._id, msg.src, False, msg.prev_index, hint, hint_term
                )
            )
            return
        if entries:
            first_new = len(entries)
            for i, e in enumerate(entries):
                t = log.term_at(e.index)
                if t is None:
                    first_new = i
                    break
                if t != e.term:
                    assert e.index > self.commit_index, ("conflict in committed entry", e.index)
                    log.truncate_after(e.index - 1)
                    first_new = i
                    break
            if first_new < len(entries):
                log.append(entries[first_new:])
        last_new = prev_index + len(entries)
        if msg.commit > self.commit_index:
            self.commit_index = max(self.commit_index, min(msg.commit, last_new))
        self._send(AppendResponse(self._term, self._id, msg.src, True, last_new))

    def _handle_heartbeat(self, msg: HeartbeatRequest) -> None:
        self._follow(msg.src)
        if msg.commit > self.commit_index:
            self.commit_index = min(msg.commit, self._log.last_index)
        self._send(HeartbeatResponse(self._term, self._id, msg.src, self._log.last_index))

    def _handle_append_response(self, msg: AppendResponse) -> None:
        if self._role is not _LEADER:
            return
        pr = self._progress.get(msg.src)
        if pr is None:
            return
        if msg.success:
            if msg.match_index > pr.match:
                pr.match = msg.match_index
                pr.stale_heartbeats = 0
                while pr.inflight and pr.inflight[0] <= pr.match:
                    pr.inflight.popleft()
                if pr.state is _PROBE:
                    pr.state = _REPLICATE
                    pr.paused = False
                    pr.next = pr.match + 1
                    pr.inflight.clear()
                elif pr.state is _SNAPSHOT:
                    return
                pr.next = max(pr.next, pr.match + 1)
                self._commit_dirty = True  # this peer may now learn more of the commit
                if pr.is_voter:
                    self._maybe_commit()
                if (
                    msg.src == self._transfer_target
                    and pr.match == self._log.last_index
                    and self._role is _LEADER
                ):
                    self._send(TimeoutNow(self._term, self._id, msg.src))
            elif pr.state is _PROBE:
                pr.paused = False
            self._send_append(msg.src)
            return
        rejected = msg.match_index
        if pr.state is _SNAPSHOT:
            return
        if pr.state is _REPLICATE and rejected <= pr.match:
            return  # stale: refers to something already acknowledged
        if pr.state is _PROBE and rejected != pr.next - 1:
            return  # stale probe answer
        j = min(msg.hint_index, self._log.last_index)
        while j > self._log.snap_index:
            t = self._log.term_at(j)
            assert t is not None
            if t <= msg.hint_term:
                break
            j -= 1
        pr.state = _PROBE
        pr.inflight.clear()
        pr.paused = False
        pr.next = max(pr.match + 1, min(j + 1, rejected))
        self._send_append(msg.src)

    def _handle_heartbeat_response(self, msg: HeartbeatResponse) -> None:
        if self._role is not _LEADER:
            return
        pr = self._progress.get(msg.src)
        if pr is None:
            return
        if pr.state is _SNAPSHOT:
            self._send_snapshot_chunk(msg.src, pr)  # a chunk or its answer may be lost
            return
        if pr.state is _PROBE:
            pr.paused = False
        elif pr.inflight and pr.match == pr.match_at_heartbeat:
            # In-flight appends made no progress for two heartbeats: they were probably
            # lost (the connection broke); fall back to probing from the match point.
            pr.stale_heartbeats += 1
            if pr.stale_heartbeats >= 2:
                pr.state = _PROBE
                pr.inflight.clear()
                pr.paused = False
                pr.stale_heartbeats = 0
                pr.next = pr.match + 1
        else:
            pr.stale_heartbeats = 0
        pr.match_at_heartbeat = pr.match
        if pr.match < self._log.last_index or pr.state is _PROBE:
            self._send_append(msg.src)

    def _handle_snapshot(self, msg: SnapshotRequest) -> None:
        self._follow(msg.src)
        meta = msg.meta
        if self._incoming_meta != meta:
            if msg.offset != 0:
                self._send(
                    SnapshotResponse(self._term, self._id, msg.src, meta.index, 0, False, False)
                )
                return
            self._incoming_meta = meta
            self._incoming_buf = bytearray()
        if msg.offset == 0:
            self._incoming_buf = bytearray(msg.chunk)  # (re)start
        elif msg.offset == len(self._incoming_buf):
            self._incoming_buf += msg.chunk
        else:
            msg = attrs.evolve(msg, done=False)  # out of order: ask for the right offset
        if not msg.done:
            self._send(
                SnapshotResponse(
                    self._term, self._id, msg.src, meta.index, len(self._incoming_buf), False
                )
            )
            return
        data = bytes(self._incoming_buf)
        self._incoming_meta, self._incoming_buf = None, bytearray()
        if meta.index <= self.commit_index:
            pass  # we already have (and may have applied) everything it covers
        elif self._log.term_at(meta.index) == meta.term:
            self.commit_index = meta.index  # our log already contains it: keep the log
        else:
            self._log.reset_to_snapshot(meta)
            self.commit_index = meta.index
            self._pending_snapshot = Snapshot(meta, data)
        index = max(meta.index, min(self.commit_index, self._log.last_index))
        self._send(SnapshotResponse(self._term, self._id, msg.src, index, len(data), True))

    def _handle_snapshot_response(self, msg: SnapshotResponse) -> None:
        if self._role is not _LEADER:
            return
        pr = self._progress.get(msg.src)
        if pr is None or pr.state is not _SNAPSHOT:
            return
        if msg.done and msg.success:
            pr.match = max(pr.match, msg.index)
            pr.next = pr.match + 1
            pr.state = _PROBE
            pr.paused = False
            pr.snap_meta = None
            pr.inflight.clear()
            self._commit_dirty = True
            if pr.is_voter:
                self._maybe_commit()
            self._send_append(msg.src)
            return
        if pr.snap_meta is None or msg.index != pr.snap_meta.index:
            return
        if msg.next_offset != pr.snap_offset or not msg.success:
            pr.snap_offset = msg.next_offset if msg.success else 0
            pr.paused = False
            self._send_snapshot_chunk(msg.src, pr)

    def _handle_timeout_now(self, msg: TimeoutNow) -> None:
        if self._is_voter and self._role is not _LEADER:
            self._become_candidate(transfer=True)
