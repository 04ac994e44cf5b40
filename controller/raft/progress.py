"""The leader's per-peer replication state (etcd's Progress)."""

from __future__ import annotations

import enum
from collections import deque

import attrs

from controller.raft.types import LogIndex, SnapshotMeta


class PeerState(enum.StrEnum):
    """How the leader replicates to one peer (etcd's Progress states)."""

    PROBE = "probe"  # one append at a time until we find where the logs match
    REPLICATE = "replicate"  # optimistic pipelining, bounded by max_inflight_appends
    SNAPSHOT = "snapshot"  # streaming a snapshot, one chunk in flight


# Module-level aliases: enum member lookups through the class are slow on hot paths.
PROBE, REPLICATE, SNAPSHOT = PeerState.PROBE, PeerState.REPLICATE, PeerState.SNAPSHOT


@attrs.frozen
class PeerStatus:
    """The leader's view of one peer, for `kraft quorum status`."""

    match_index: LogIndex
    next_index: LogIndex
    state: str
    inflight: int
    last_contact_ticks: int
    is_voter: bool


class Progress:
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
        self.state = PROBE
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
