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

Layout (etcd-io/raft's shape): this module holds the node's state, its public API and the
handling every role shares (term checks, vote requests, `Ready`). What differs per role is
in a step function and a tick function that each transition installs (`_step`, `_tick`):
`controller.raft.follower` (followers and observers), `controller.raft.election`
(pre-candidates, candidates, the election timer) and `controller.raft.leader` (replication,
commit, leadership transfer).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from controller.raft import election, follower, leader
from controller.raft.config import InitialState, RaftConfig
from controller.raft.log import RaftLog
from controller.raft.messages import (
    AppendRequest,
    AppendResponse,
    CommitNotice,
    HeartbeatRequest,
    Message,
    SnapshotRequest,
    VoteRequest,
    VoteResponse,
)
from controller.raft.progress import PeerState, PeerStatus, Progress
from controller.raft.ready import Ready, SoftState
from controller.raft.roles import FOLLOWER, LEADER, OBSERVER, Role
from controller.raft.types import (
    Entry,
    HardState,
    LogIndex,
    NodeId,
    Snapshot,
    SnapshotMeta,
    Term,
    Zxid,
)

__all__ = [
    "InitialState",
    "NotLeader",
    "PeerState",
    "PeerStatus",
    "ProposalsBlocked",
    "RaftConfig",
    "RaftCore",
    "Role",
]

# The role-specific halves of `step()` and `tick()`, swapped on every role change.
StepFn = Callable[["RaftCore", Message], None]
TickFn = Callable[["RaftCore"], None]


class NotLeader(Exception):
    """A proposal reached a node that is not the leader."""

    def __init__(self, leader_id: NodeId | None) -> None:
        super().__init__(f"not the leader (leader is {leader_id})")
        self.leader_id = leader_id


class ProposalsBlocked(Exception):
    """The leader cannot take proposals now (transferring, or too much uncommitted work)."""


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

        self._role = FOLLOWER if self._is_voter else OBSERVER
        self._step: StepFn = follower.step_follower
        self._tick: TickFn = election.tick_follower if self._is_voter else election.tick_observer
        self._leader_id: NodeId | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = 0
        self._failed_elections = 0
        self._votes: dict[NodeId, bool] = {}
        # Leader-only state, reset on every step-down (`_reset`): empty in the other roles.
        self._progress: dict[NodeId, Progress] = {}
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
        return self._role is LEADER

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
        if self._role is not LEADER:
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
        if self._role is LEADER:
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
        if self._role is not LEADER or self._transfer_target is not None:
            return 0
        uncommitted = self._log.last_index - self.commit_index
        return max(0, self.config.max_uncommitted_entries - uncommitted)

    # ------------------------------------------------------------------ inputs

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self._tick(self)

    def campaign(self) -> None:
        """Start an election now (skipping pre-vote), if this node may vote."""
        if self._is_voter and self._role is not LEADER:
            election.become_candidate(self, transfer=False)

    def propose(self, commands: Sequence[bytes]) -> tuple[LogIndex, Zxid]:
        """Append one COMMAND entry per item; returns (index, zxid) of the last one."""
        assert commands, "empty proposal"
        if self._role is not LEADER:
            raise NotLeader(self._leader_id)
        if self._transfer_target is not None:
            raise ProposalsBlocked("leadership transfer in progress")
        if len(commands) > self.proposal_room():
            raise ProposalsBlocked(
                f"too many uncommitted entries ({self._log.last_index - self.commit_index})"
            )
        appended = leader.append_commands(self, commands)
        if appended is None:
            # ZooKeeper semantics: the epoch must change before the zxid counter wraps.
            self._become_follower(self._term, None)
            raise NotLeader(None)
        return appended

    def transfer_leadership(self, target: NodeId | None = None) -> None:
        """Hand leadership to `target` (by default the most caught-up voter among those
        still answering; see `leader.transfer_target`) and stop proposals meanwhile.

        The transfer aborts, and proposals resume, if the target has not taken over within
        an election timeout."""
        if self._role is not LEADER:
            raise NotLeader(self._leader_id)
        others = [v for v in self._voters if v != self._id]
        if not others:
            return  # the only voter: no one to hand over to
        if target is None:
            target = leader.transfer_target(self, others)
        assert target in others, target
        leader.start_transfer(self, target)

    def compact(self, snapshot: Snapshot) -> None:
        """The state machine was snapshotted durably at `snapshot.meta.index`."""
        meta = snapshot.meta
        assert meta.index <= self.applied_index, (meta.index, self.applied_index)
        if meta.index <= self._log.snap_index:
            return
        self._log.compact(meta.index, meta.term, meta.zxid)
        self._snapshot = snapshot

    def step(self, msg: Message) -> None:
        """Handle one message addressed to this node.

        The part every role shares is here: a message of a newer term first makes this node
        a follower of that term (except where the leader lease or pre-vote say not to), a
        message of an older term is answered with ours, and vote requests are answered the
        same way in every role. Everything else goes to the current role's step function."""
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
        # Any message of this term shows its sender is alive (check-quorum). Only a leader
        # keeps progress records, so this does nothing in the other roles.
        pr = self._progress.get(msg.src)
        if pr is not None:
            pr.recent_active = True
            pr.last_contact = 0
        if isinstance(msg, VoteRequest):
            self._handle_vote_request(msg)
        else:
            self._step(self, msg)

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
        if self._role is LEADER:
            if self._need_broadcast:
                leader.broadcast_append(self)
            if self._commit_dirty:
                leader.notify_commit(self)
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
        if self._role is LEADER and rd.entries:
            leader.maybe_commit(self)  # our own copy is durable now: it may count

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
        if self._role is LEADER:
            return True
        return self._leader_id is not None and self._election_elapsed < self.config.election_ticks

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
        self, term: Term, leader_id: NodeId | None, *, keep_timer: bool = False
    ) -> None:
        """Follow `leader_id` (None: not known yet) in `term`.

        `keep_timer`: a higher term learned from a candidate or a response, not from a
        leader. The Raft paper (Figure 2) restarts the election timer only on hearing from
        the current leader or on granting a vote; restarting it here would let a node that
        can never win (its log is behind) hold off, forever, the nodes that could."""
        assert term >= self._term, (term, self._term)
        if self._role is LEADER:
            keep_timer = False  # its elapsed counted check-quorum rounds, not silence
        self._reset(term, keep_timer=keep_timer)
        if self._is_voter:
            self._role, self._tick = FOLLOWER, election.tick_follower
        else:
            self._role, self._tick = OBSERVER, election.tick_observer
        self._step = follower.step_follower  # observers follow the same way
        self._leader_id = leader_id
        if leader_id is not None:
            self._failed_elections = 0
            self._reset_randomized_timeout()

    # ------------------------------------------------------------------ shared handlers

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
        # (A leader has voted for itself in its term: the role test only says so plainly.)
        grant = (
            self._is_voter
            and self._role is not LEADER
            and self._voted_for in (None, msg.src)
            and up_to_date
        )
        if grant:
            self._voted_for = msg.src
            self._election_elapsed = 0
        self._send(VoteResponse(self._term, self._id, msg.src, grant))
