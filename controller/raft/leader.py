"""The leader's side of `RaftCore`: its step and tick functions, replication to each peer
(probe, pipelined appends, chunked snapshots), commit counting and leadership transfer.

These are functions of the core rather than methods (etcd's `stepLeader` shape): the core
installs `step_leader` and `tick_leader` when it becomes leader, and the role's state (the
per-peer `Progress` records, the transfer target) exists only while it leads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

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
)
from controller.raft.progress import PROBE, REPLICATE, SNAPSHOT, Progress
from controller.raft.roles import CANDIDATE, LEADER
from controller.raft.types import (
    ZXID_COUNTER_BITS,
    ZXID_COUNTER_MAX,
    Entry,
    EntryKind,
    LogIndex,
    NodeId,
    Zxid,
    make_zxid,
)

if TYPE_CHECKING:
    from controller.raft.core import RaftCore


# ------------------------------------------------------------------ transitions


def become_leader(core: RaftCore) -> None:
    assert core._role is CANDIDATE, core._role
    core._role = LEADER
    core._step = step_leader
    core._tick = tick_leader
    core._leader_id = core._id
    core._failed_elections = 0
    core._heartbeat_elapsed = 0
    core._election_elapsed = 0
    nxt = core._log.last_index + 1
    core._progress = {p: Progress(nxt, p in core._voters) for p in core._voters + core._observers}
    me = core._progress[core._id]
    me.match, me.next = core._log.persisted_index, nxt
    core._term_start_index = nxt
    noop = Entry(core._term, nxt, make_zxid(core._term, 0), EntryKind.NOOP, b"")
    core._log.append([noop])
    core._need_broadcast = True


def append_commands(core: RaftCore, commands: Sequence[bytes]) -> tuple[LogIndex, Zxid] | None:
    """Append one COMMAND entry per command; (index, zxid) of the last one, or None if the
    zxid counter of this term would overflow (the caller steps down: a new term, a new
    epoch)."""
    index = core._log.last_index
    counter = index + len(commands) - core._term_start_index
    if counter > ZXID_COUNTER_MAX:
        return None
    term = core._term
    start = core._term_start_index
    assert index + 1 - start > 0 and counter <= ZXID_COUNTER_MAX
    base = (term << ZXID_COUNTER_BITS) - start  # zxid = base + index (make_zxid inlined)
    kind = EntryKind.COMMAND
    new = [
        Entry(term, index + i, base + index + i, kind, data) for i, data in enumerate(commands, 1)
    ]
    core._log.append(new)
    core._need_broadcast = True
    last = new[-1]
    return last.index, last.zxid


def transfer_target(core: RaftCore, voters: list[NodeId]) -> NodeId:
    """The voter `transfer_leadership()` hands over to when given no target, among `voters`
    (every voter but this leader; never an observer, which cannot be elected).

    Among the voters heard from within the last election timeout, the most caught-up one
    (highest match index; the lowest id among equals), so that the transfer needs the
    fewest appends before TimeoutNow (Raft thesis §3.10, step 2). A voter that stopped
    answering can be neither caught up nor told to campaign: choosing it (it may well hold
    the highest match, or tie with the others on an idle quorum) would block proposals for
    an election timeout and then fail. Only if no voter was heard from recently are they
    all considered."""
    progress, window = core._progress, core.config.election_ticks
    live = [v for v in voters if progress[v].last_contact < window]
    return max(live or voters, key=lambda v: (progress[v].match, -v))


def start_transfer(core: RaftCore, target: NodeId) -> None:
    """Bring `target` up to date, then tell it to campaign (thesis §3.10)."""
    core._transfer_target = target
    core._transfer_elapsed = 0
    pr = core._progress[target]
    if pr.match == core._log.last_index:
        core._send(TimeoutNow(core._term, core._id, target))
    else:
        send_append(core, target)


# ------------------------------------------------------------------ step and tick


def step_leader(core: RaftCore, msg: Message) -> None:
    """A message of the current term, other than a vote request, reaching the leader."""
    if isinstance(msg, AppendResponse):
        handle_append_response(core, msg)
    elif isinstance(msg, HeartbeatResponse):
        handle_heartbeat_response(core, msg)
    elif isinstance(msg, SnapshotResponse):
        handle_snapshot_response(core, msg)
    elif isinstance(msg, AppendRequest | HeartbeatRequest | SnapshotRequest | CommitNotice):
        raise AssertionError(f"two leaders in term {core._term}")
    # Late vote responses and a TimeoutNow (we already lead) need nothing.


def tick_leader(core: RaftCore) -> None:
    core._heartbeat_elapsed += 1
    core._election_elapsed += 1
    for pr in core._progress.values():
        pr.last_contact += 1
    if core._transfer_target is not None:
        core._transfer_elapsed += 1
        if core._transfer_elapsed >= core.config.election_ticks:
            core._transfer_target = None  # abort: the target did not take over in time
    if core._election_elapsed >= core.config.election_ticks:
        core._election_elapsed = 0
        if core.config.check_quorum:
            active = {p for p, pr in core._progress.items() if pr.recent_active}
            active.add(core._id)
            if sum(1 for v in core._voters if v in active) < core._quorum:
                core._become_follower(core._term, None)
                return
        for p, pr in core._progress.items():
            pr.recent_active = p == core._id
    if core._heartbeat_elapsed >= core.config.heartbeat_ticks:
        core._heartbeat_elapsed = 0
        for p in core._peers():
            send_heartbeat(core, p)


# ------------------------------------------------------------------ sending


def broadcast_append(core: RaftCore) -> None:
    for p in core._peers():
        send_append(core, p)


def notify_commit(core: RaftCore) -> None:
    # Followers apply (and answer their clients) only once they learn the commit index.
    # Tell each one as soon as it may learn more: when the commit moves, and when a
    # slower follower's ack arrives after the commit already passed its old match.
    # Appends sent in this Ready already carry the commit, so this runs after them.
    commit = core.commit_index
    for p in core._peers():
        pr = core._progress[p]
        known = min(pr.match, commit)
        if known > pr.commit_sent:
            pr.commit_sent = known
            core._send(CommitNotice(core._term, core._id, p, known), early=True)


def send_heartbeat(core: RaftCore, p: NodeId) -> None:
    pr = core._progress[p]
    # Clamped to what the peer is known to hold: beyond its match index its log may
    # still contain entries of an older term that the leader never sent.
    commit = min(pr.match, core.commit_index)
    pr.commit_sent = max(pr.commit_sent, commit)
    core._send(HeartbeatRequest(core._term, core._id, p, commit), early=True)


def send_append(core: RaftCore, p: NodeId) -> None:
    """Send what `p` needs next, respecting its state and the in-flight bound."""
    pr = core._progress[p]
    log = core._log
    cfg = core.config
    while True:
        if pr.state is SNAPSHOT or pr.paused:
            return
        if pr.state is REPLICATE and (
            len(pr.inflight) >= cfg.max_inflight_appends or pr.next > log.last_index
        ):
            return
        prev_index = pr.next - 1
        prev_term = log.term_at(prev_index)
        if prev_term is None:
            start_snapshot(core, p, pr)
            return
        hi = min(log.last_index, prev_index + cfg.max_append_entries)
        batch = log.slice(pr.next, hi, cfg.max_append_bytes) if hi >= pr.next else []
        core._send(
            AppendRequest(
                core._term, core._id, p, prev_index, prev_term, tuple(batch), core.commit_index
            ),
            early=True,
        )
        # The follower adopts the commit up to the last index this append proves.
        pr.commit_sent = max(pr.commit_sent, min(core.commit_index, prev_index + len(batch)))
        if pr.state is PROBE:
            pr.paused = True
            return
        last = batch[-1].index
        pr.next = last + 1
        pr.inflight.append(last)


def start_snapshot(core: RaftCore, p: NodeId, pr: Progress) -> None:
    snap = core._snapshot
    assert snap is not None and snap.meta.index == core._log.snap_index, "no snapshot to send"
    pr.state = SNAPSHOT
    pr.inflight.clear()
    pr.snap_meta = snap.meta
    pr.snap_offset = 0
    send_snapshot_chunk(core, p, pr)


def send_snapshot_chunk(core: RaftCore, p: NodeId, pr: Progress) -> None:
    snap = core._snapshot
    assert snap is not None
    if pr.snap_meta != snap.meta:
        pr.snap_meta, pr.snap_offset = snap.meta, 0  # we compacted again: restart
    size = core.config.snapshot_chunk_bytes
    chunk = snap.data[pr.snap_offset : pr.snap_offset + size]
    done = pr.snap_offset + len(chunk) >= len(snap.data)
    core._send(
        SnapshotRequest(core._term, core._id, p, snap.meta, pr.snap_offset, chunk, done),
        early=True,
    )
    pr.paused = True


def maybe_commit(core: RaftCore) -> None:
    assert core._role is LEADER
    me = core._progress[core._id]
    me.match = core._log.persisted_index
    matches = sorted((core._progress[v].match for v in core._voters), reverse=True)
    candidate = matches[core._quorum - 1]
    # Raft §5.4.2: only entries of the current term commit by counting replicas.
    if candidate > core.commit_index and core._log.term_at(candidate) == core._term:
        core.commit_index = candidate
        core._commit_dirty = True


# ------------------------------------------------------------------ responses


def handle_append_response(core: RaftCore, msg: AppendResponse) -> None:
    pr = core._progress.get(msg.src)
    if pr is None:
        return
    if msg.success:
        if msg.match_index > pr.match:
            pr.match = msg.match_index
            pr.stale_heartbeats = 0
            while pr.inflight and pr.inflight[0] <= pr.match:
                pr.inflight.popleft()
            if pr.state is PROBE:
                pr.state = REPLICATE
                pr.paused = False
                pr.next = pr.match + 1
                pr.inflight.clear()
            elif pr.state is SNAPSHOT:
                return
            pr.next = max(pr.next, pr.match + 1)
            core._commit_dirty = True  # this peer may now learn more of the commit
            if pr.is_voter:
                maybe_commit(core)
            if msg.src == core._transfer_target and pr.match == core._log.last_index:
                # The transfer target holds our whole log: it may campaign now.
                core._send(TimeoutNow(core._term, core._id, msg.src))
        elif pr.state is PROBE:
            pr.paused = False
        send_append(core, msg.src)
        return
    rejected = msg.match_index
    if pr.state is SNAPSHOT:
        return
    if pr.state is REPLICATE and rejected <= pr.match:
        return  # stale: refers to something already acknowledged
    if pr.state is PROBE and rejected != pr.next - 1:
        return  # stale probe answer
    j = min(msg.hint_index, core._log.last_index)
    while j > core._log.snap_index:
        t = core._log.term_at(j)
        assert t is not None
        if t <= msg.hint_term:
            break
        j -= 1
    pr.state = PROBE
    pr.inflight.clear()
    pr.paused = False
    pr.next = max(pr.match + 1, min(j + 1, rejected))
    send_append(core, msg.src)


def handle_heartbeat_response(core: RaftCore, msg: HeartbeatResponse) -> None:
    pr = core._progress.get(msg.src)
    if pr is None:
        return
    if pr.state is SNAPSHOT:
        send_snapshot_chunk(core, msg.src, pr)  # a chunk or its answer may be lost
        return
    if pr.state is PROBE:
        pr.paused = False
    elif pr.inflight and pr.match == pr.match_at_heartbeat:
        # In-flight appends made no progress for two heartbeats: they were probably
        # lost (the connection broke); fall back to probing from the match point.
        pr.stale_heartbeats += 1
        if pr.stale_heartbeats >= 2:
            pr.state = PROBE
            pr.inflight.clear()
            pr.paused = False
            pr.stale_heartbeats = 0
            pr.next = pr.match + 1
    else:
        pr.stale_heartbeats = 0
    pr.match_at_heartbeat = pr.match
    if pr.match < core._log.last_index or pr.state is PROBE:
        send_append(core, msg.src)


def handle_snapshot_response(core: RaftCore, msg: SnapshotResponse) -> None:
    pr = core._progress.get(msg.src)
    if pr is None or pr.state is not SNAPSHOT:
        return
    if msg.done and msg.success:
        pr.match = max(pr.match, msg.index)
        pr.next = pr.match + 1
        pr.state = PROBE
        pr.paused = False
        pr.snap_meta = None
        pr.inflight.clear()
        core._commit_dirty = True
        if pr.is_voter:
            maybe_commit(core)
        send_append(core, msg.src)
        return
    if pr.snap_meta is None or msg.index != pr.snap_meta.index:
        return
    if msg.next_offset != pr.snap_offset or not msg.success:
        pr.snap_offset = msg.next_offset if msg.success else 0
        pr.paused = False
        send_snapshot_chunk(core, msg.src, pr)
