"""A tiny lock-step network of RaftCores for table-style unit tests (etcd's `network`)."""

from __future__ import annotations

import random

from controller.raft.core import InitialState, RaftConfig, RaftCore
from controller.raft.messages import Message
from controller.raft.types import Entry, NodeId


class Cluster:
    """Cores connected by an in-order network with per-link cuts; storage is in memory."""

    def __init__(self, voters: int = 3, observers: int = 0, **cfg: int | bool) -> None:
        vs = tuple(range(1, voters + 1))
        obs = tuple(range(voters + 1, voters + observers + 1))
        # The scenarios count ticks against these, not against the product's defaults.
        cfg = {"election_ticks": 20, "heartbeat_ticks": 5, **cfg}
        self.cores: dict[NodeId, RaftCore] = {
            n: RaftCore(RaftConfig(n, vs, obs, **cfg), InitialState(), random.Random(n))  # type: ignore[arg-type]
            for n in vs + obs
        }
        self.applied: dict[NodeId, list[Entry]] = {n: [] for n in self.cores}
        self.cut: set[tuple[NodeId, NodeId]] = set()
        self.sent: list[Message] = []

    def isolate(self, n: NodeId) -> None:
        for m in self.cores:
            if m != n:
                self.cut |= {(n, m), (m, n)}

    def heal(self) -> None:
        self.cut = set()

    def heal_between(self, a: NodeId, b: NodeId) -> None:
        self.cut -= {(a, b), (b, a)}

    def stabilize(self, rounds: int = 200) -> None:
        queue: list[Message] = []
        for _ in range(rounds):
            for n, core in self.cores.items():
                while core.has_ready():
                    rd = core.ready()
                    queue.extend(rd.early_messages)
                    queue.extend(rd.messages)
                    self.applied[n].extend(rd.committed)
                    core.advance(rd)
            if not queue:
                return
            for msg in queue:
                self.sent.append(msg)
                if (msg.src, msg.dst) not in self.cut:
                    self.cores[msg.dst].step(msg)
            queue = []

    def tick(self, ticks: int = 1, only: tuple[NodeId, ...] | None = None) -> None:
        for _ in range(ticks):
            for n, core in self.cores.items():
                if only is None or n in only:
                    core.tick()
            self.stabilize()

    def leader(self) -> RaftCore | None:
        leaders = [c for c in self.cores.values() if c.is_leader]
        assert len({c.term for c in leaders}) == len(leaders)
        return max(leaders, key=lambda c: c.term) if leaders else None

    def elect(self, n: NodeId) -> RaftCore:
        self.cores[n].campaign()
        self.stabilize()
        core = self.cores[n]
        assert core.is_leader, core.role
        return core
