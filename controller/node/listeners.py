"""What the node tells the services running on its replicated state, in the shape of
Kafka's `RaftClient.Listener` (`handleCommit`, `handleLoadSnapshot`, `handleLeaderChange`).

The node calls these from its Raft loop, in log order; they must not block or await.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from controller.raft.types import Entry, LogIndex, NodeId, Term


@attrs.frozen
class LeaderChange:
    """The quorum's leader as this node now knows it.

    `complete_from` is the index of the first entry of the leader's term (its no-op): once
    this node has applied that index, its state holds everything any earlier leader
    committed, so a new leader may act on it (Kafka's active controller waits for the same
    point before it replays and takes over). 0 when this node is not the leader.
    """

    leader_id: NodeId | None
    term: Term
    role: str
    complete_from: LogIndex = 0

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"


CommittedBatch = Sequence[tuple[Entry, object]]
"""Applied entries in log order, each with the state machine's result (None for no-ops and
entries that are not commands)."""


class RaftListener(Protocol):
    """A consumer of the replicated log: the ZooKeeper service, the broker controller."""

    def handle_commit(self, batch: CommittedBatch) -> None:
        """These entries were applied to the state machine, in order."""

    def handle_snapshot(self, index: LogIndex, zxid: int) -> None:
        """The state machine's state was replaced by a snapshot ending at `index`."""

    def handle_leader_change(self, change: LeaderChange) -> None:
        """The role of this node or the known leader changed."""
