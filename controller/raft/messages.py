"""Raft messages exchanged between controllers.

Every message carries `term`, `src` and `dst`. They are frozen values: the core creates
them, the shell serializes them (cattrs + msgpack) and the simulator routes them.
"""

from __future__ import annotations

import attrs

from controller.raft.types import Entry, LogIndex, NodeId, SnapshotMeta, Term


@attrs.frozen(slots=True)
class VoteRequest:
    """Ask for a (pre-)vote. A pre-vote carries the term the candidate *would* use and
    changes no one's persistent state. `transfer` marks a campaign started by TimeoutNow,
    which voters grant even while they still hear from a leader."""

    term: Term
    src: NodeId
    dst: NodeId
    last_index: LogIndex
    last_term: Term
    pre_vote: bool = False
    transfer: bool = False


@attrs.frozen(slots=True)
class VoteResponse:
    """Answer to a VoteRequest (same `pre_vote` flag as the request)."""

    term: Term
    src: NodeId
    dst: NodeId
    granted: bool
    pre_vote: bool = False


@attrs.frozen(slots=True)
class AppendRequest:
    """Replicate `entries` after (`prev_index`, `prev_term`); carries the leader's commit."""

    term: Term
    src: NodeId
    dst: NodeId
    prev_index: LogIndex
    prev_term: Term
    entries: tuple[Entry, ...]
    commit: LogIndex


@attrs.frozen(slots=True)
class AppendResponse:
    """Success: `match_index` is the follower's last index known to match the leader.
    Rejection: `hint_index`/`hint_term` let the leader skip a whole conflicting term."""

    term: Term
    src: NodeId
    dst: NodeId
    success: bool
    match_index: LogIndex
    hint_index: LogIndex = 0
    hint_term: Term = 0


@attrs.frozen(slots=True)
class HeartbeatRequest:
    """Leader liveness plus a commit index the follower may safely adopt
    (`min(follower match, leader commit)`)."""

    term: Term
    src: NodeId
    dst: NodeId
    commit: LogIndex


@attrs.frozen(slots=True)
class CommitNotice:
    """The leader's commit index moved past what this follower was told: adopt
    `commit` (already clamped to the follower's match index). No answer is expected.

    Sent as soon as an acknowledgement lets the follower learn more (etcd-io/raft bumps a
    follower's commit the same way; ZooKeeper sends COMMIT to every follower at once), so a
    client connected to a follower does not wait for the next heartbeat."""

    term: Term
    src: NodeId
    dst: NodeId
    commit: LogIndex


@attrs.frozen(slots=True)
class HeartbeatResponse:
    """Follower is alive; `last_index` lets the leader notice a follower that needs catch-up."""

    term: Term
    src: NodeId
    dst: NodeId
    last_index: LogIndex


@attrs.frozen(slots=True)
class SnapshotRequest:
    """One chunk of a snapshot, starting at byte `offset`; `done` on the last chunk."""

    term: Term
    src: NodeId
    dst: NodeId
    meta: SnapshotMeta
    offset: int
    chunk: bytes
    done: bool


@attrs.frozen(slots=True)
class SnapshotResponse:
    """Acknowledges a chunk: `next_offset` is where the follower wants to continue;
    `done` once the whole snapshot is installed and durable."""

    term: Term
    src: NodeId
    dst: NodeId
    index: LogIndex
    next_offset: int
    done: bool
    success: bool = True


@attrs.frozen(slots=True)
class TimeoutNow:
    """Leadership transfer: the leader tells a caught-up voter to campaign at once."""

    term: Term
    src: NodeId
    dst: NodeId


Message = (
    VoteRequest
    | VoteResponse
    | AppendRequest
    | AppendResponse
    | HeartbeatRequest
    | HeartbeatResponse
    | SnapshotRequest
    | SnapshotResponse
    | TimeoutNow
    | CommitNotice
)

MESSAGE_TYPES: tuple[type, ...] = (
    VoteRequest,
    VoteResponse,
    AppendRequest,
    AppendResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    SnapshotRequest,
    SnapshotResponse,
    TimeoutNow,
    CommitNotice,
)
