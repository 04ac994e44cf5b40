"""Static configuration of a Raft member and the state it starts from."""

from __future__ import annotations

import attrs

from controller import limits
from controller.raft.types import Entry, HardState, NodeId, Snapshot


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
