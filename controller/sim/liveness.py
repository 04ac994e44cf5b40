"""Liveness bounds the simulator checks once the network is healthy again.

After the fault phase every link works (no loss, no stragglers, no cuts) and every node is
up. From then on, in ticks of the simulated clock:

1. a leader is elected within `LEADER_WITHIN_TIMEOUTS` election timeouts;
2. whenever the leader knows an index is committed and a peer holds it (the peer's match
   index), the peer knows it too within one message delay (`max_delay`): a commit is
   never left for the next heartbeat to carry. (Not checked on a link that lost or
   reordered a message in the leader's term, before the heal: a lost or overtaken append
   is recovered through a rejection or heartbeats, as designed.)
3. once every node has caught up, proposals commit on the leader within the round trips
   (and fsyncs) the replication pipeline needs for the backlog ahead of them, the leader
   stays the leader and no node's term moves: a node that cannot win (behind, or ticking
   fast) must not disrupt a healthy majority.

A violation raises `SimulationFailure` through `Simulation.fail`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from controller.raft.types import LogIndex, NodeId, Term
from controller.sim.options import TICK

if TYPE_CHECKING:
    from controller.sim.simulation import SimNode, Simulation

# A timeout is drawn from [T, 2T) and election backoff widens it up to 4x (8T): room for
# the widest first attempt and a second after a collision. Over 20,000 seeds the slowest
# heal took 6.9 timeouts (docs/raft.md).
LEADER_WITHIN_TIMEOUTS = 12


class HealMonitor:
    """Tracks the bounds above for one run's healthy phase (see the module docstring)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.start = sim.now
        self.leader_seen_at: int | None = None
        # (deadline, peer, commit index it must know, leader, term), in deadline order.
        self._commit_deadlines: deque[tuple[int, NodeId, LogIndex, NodeId, Term]] = deque()
        self._promised: dict[tuple[Term, NodeId], LogIndex] = {}
        # Steady stage: (deadline, leader, term, index) of each proposal.
        self._proposals: deque[tuple[int, NodeId, Term, LogIndex]] = deque()
        self.steady_from: int | None = None
        self._steady_terms: dict[NodeId, Term] = {}
        self._steady_leader: tuple[NodeId, Term] | None = None
        self.max_commit_delay = 0  # units, leader knows -> peer knows (the largest seen)

    # ------------------------------------------------------------------ hooks

    def leader_bound_ticks(self) -> int:
        return LEADER_WITHIN_TIMEOUTS * self.sim.opt.election_ticks

    def after_ready(self, node: SimNode) -> None:
        """A node finished a Ready: if it leads, each peer is owed what it may now know."""
        core = node.core
        if not core.is_leader:
            return
        if self.leader_seen_at is None:
            self.leader_seen_at = self.sim.now
        deadline = self.sim.now + self.sim.opt.max_delay
        for peer, status in core.progress().items():
            if peer == node.id:
                continue
            known = min(status.match_index, core.commit_index)
            key = (core.term, peer)
            if known > self._promised.get(key, 0):
                self._promised[key] = known
                self._commit_deadlines.append((deadline, peer, known, node.id, core.term))

    def begin_steady(self) -> None:
        """Everyone caught up: from now on the leader and every term must stay put."""
        sim = self.sim
        leaders = [n for n in sim.nodes.values() if n.core.is_leader]
        assert len(leaders) == 1, [n.id for n in leaders]
        self.steady_from = sim.now
        self._steady_leader = (leaders[0].id, leaders[0].core.term)
        self._steady_terms = {n.id: n.core.term for n in sim.nodes.values()}

    def proposed(self, leader: SimNode, index: LogIndex) -> None:
        """Steady stage: `index` was proposed now; it must commit on the leader in time.

        The bound is what the replication pipeline allows: the uncommitted backlog goes out
        `max_append_entries * max_inflight` entries per round trip, and a slow leader disk
        holds each round for one fsync (the loop is blocked while it runs)."""
        o = self.sim.opt
        core = leader.core
        backlog = index - core.commit_index
        per_round = o.max_append_entries * o.max_inflight
        rounds = -(-backlog // per_round) + 1
        fsync = o.slow_leader_disk_ticks * TICK
        bound = rounds * (2 * o.max_delay + fsync + TICK) + fsync + 2 * TICK
        self._proposals.append((self.sim.now + bound, leader.id, core.term, index))

    # ------------------------------------------------------------------ checks

    def check(self) -> None:
        sim = self.sim
        now = sim.now
        while self._commit_deadlines and self._commit_deadlines[0][0] < now:
            deadline, peer, index, leader, term = self._commit_deadlines.popleft()
            lead = sim.nodes[leader].core
            if not (lead.is_leader and lead.term == term) or sim.nodes[peer].core.term != term:
                continue  # a new term owes nothing for the old one
            if sim.last_disorder.get((leader, peer), -1) >= sim.leader_since.get(term, 0):
                continue  # lost or reordered in this term: recovery goes by rejections
            got = sim.nodes[peer].core.commit_index
            if got < index:
                sim.fail(
                    f"n{peer} still knows commit {got} at t={now}; leader n{leader} knew "
                    f"{index} was committed and held by n{peer} at t={deadline - sim.opt.max_delay}"
                    " (a commit must reach a follower within one message delay, not wait for"
                    " a heartbeat)"
                )
        while self._proposals and self._proposals[0][0] < now:
            deadline, leader, term, index = self._proposals.popleft()
            lead = sim.nodes[leader].core
            if lead.term == term and lead.commit_index < index:
                sim.fail(
                    f"proposal {index} on a healthy quorum not committed on leader n{leader} "
                    f"by t={deadline} (commit {lead.commit_index})"
                )
        if self.steady_from is not None:
            assert self._steady_leader is not None
            lid, lterm = self._steady_leader
            lead = sim.nodes[lid].core
            if not (lead.is_leader and lead.term == lterm):
                sim.fail(f"leader n{lid} (term {lterm}) lost leadership on a healthy network")
            for n in sim.nodes.values():
                if n.core.term != self._steady_terms[n.id]:
                    sim.fail(
                        f"n{n.id} moved from term {self._steady_terms[n.id]} to "
                        f"{n.core.term} on a healthy network with a leader"
                    )
