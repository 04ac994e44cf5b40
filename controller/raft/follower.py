"""The follower's side of `RaftCore` (observers too): its step function and the handling of
what the leader sends (appends, heartbeats, commit notices, snapshot chunks, TimeoutNow).

Functions of the core rather than methods (etcd's `stepFollower` shape): the core installs
`step_follower` whenever it becomes a follower or an observer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from controller.raft import election
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
from controller.raft.types import NodeId, Snapshot

if TYPE_CHECKING:
    from controller.raft.core import RaftCore


def step_follower(core: RaftCore, msg: Message) -> None:
    """A message of the current term, other than a vote request, reaching a follower."""
    if isinstance(msg, AppendRequest):
        handle_append(core, msg)
    elif isinstance(msg, HeartbeatRequest):
        handle_heartbeat(core, msg)
    elif isinstance(msg, SnapshotRequest):
        handle_snapshot(core, msg)
    elif isinstance(msg, CommitNotice):
        follow(core, msg.src)
        if msg.commit > core.commit_index:
            core.commit_index = min(msg.commit, core._log.last_index)
    elif isinstance(msg, TimeoutNow) and core._is_voter:
        # Leadership transfer: campaign now, past the leader lease (observers never do).
        election.become_candidate(core, transfer=True)
    # Responses to a leadership or a campaign this node has left behind need nothing.


def follow(core: RaftCore, src: NodeId) -> None:
    """A message from this term's leader: adopt it and reset the election timer."""
    if core._leader_id != src:
        core._leader_id = src
        core._failed_elections = 0
    core._election_elapsed = 0


def handle_append(core: RaftCore, msg: AppendRequest) -> None:
    follow(core, msg.src)
    log = core._log
    prev_index, entries = msg.prev_index, msg.entries
    if prev_index < core.commit_index:
        # Everything up to our commit index already matches the leader; skip it (this also
        # covers a prefix we compacted away).
        skip = core.commit_index - prev_index
        entries = entries[skip:]
        prev_index = core.commit_index
    elif log.term_at(prev_index) != msg.prev_term:
        hint = min(prev_index, log.last_index)
        while hint > core.commit_index:
            t = log.term_at(hint)
            if t is not None and t <= msg.prev_term:
                break
            hint -= 1
        hint_term = log.term_at(hint) or 0
        # On rejection, match_index carries the rejected prev_index.
        core._send(
            AppendResponse(core._term, core._id, msg.src, False, msg.prev_index, hint, hint_term)
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
                assert e.index > core.commit_index, ("conflict in committed entry", e.index)
                log.truncate_after(e.index - 1)
                first_new = i
                break
        if first_new < len(entries):
            log.append(entries[first_new:])
    last_new = prev_index + len(entries)
    if msg.commit > core.commit_index:
        core.commit_index = max(core.commit_index, min(msg.commit, last_new))
    core._send(AppendResponse(core._term, core._id, msg.src, True, last_new))


def handle_heartbeat(core: RaftCore, msg: HeartbeatRequest) -> None:
    follow(core, msg.src)
    if msg.commit > core.commit_index:
        core.commit_index = min(msg.commit, core._log.last_index)
    core._send(HeartbeatResponse(core._term, core._id, msg.src, core._log.last_index))


def handle_snapshot(core: RaftCore, msg: SnapshotRequest) -> None:
    follow(core, msg.src)
    meta = msg.meta
    if core._incoming_meta != meta:
        if msg.offset != 0:
            core._send(SnapshotResponse(core._term, core._id, msg.src, meta.index, 0, False, False))
            return
        core._incoming_meta = meta
        core._incoming_buf = bytearray()
    if msg.offset == 0:
        core._incoming_buf = bytearray(msg.chunk)  # (re)start
    elif msg.offset == len(core._incoming_buf):
        core._incoming_buf += msg.chunk
    else:
        msg = attrs.evolve(msg, done=False)  # out of order: ask for the right offset
    if not msg.done:
        core._send(
            SnapshotResponse(
                core._term, core._id, msg.src, meta.index, len(core._incoming_buf), False
            )
        )
        return
    data = bytes(core._incoming_buf)
    core._incoming_meta, core._incoming_buf = None, bytearray()
    if meta.index <= core.commit_index:
        pass  # we already have (and may have applied) everything it covers
    elif core._log.term_at(meta.index) == meta.term:
        core.commit_index = meta.index  # our log already contains it: keep the log
    else:
        core._log.reset_to_snapshot(meta)
        core.commit_index = meta.index
        core._pending_snapshot = Snapshot(meta, data)
    index = max(meta.index, min(core.commit_index, core._log.last_index))
    core._send(SnapshotResponse(core._term, core._id, msg.src, index, len(data), True))
