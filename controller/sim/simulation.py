"""Deterministic simulation of a Raft quorum: the shipped `RaftCore` over a faulty network.

One seed fixes everything: cluster shape, fault rates and the schedule of faults. Time is an
integer clock (`TICK` units per Raft tick). Each event (a tick of every node, a message
delivery, a fault) is followed by processing every node's `Ready` exactly as the trio node
does, and by the safety checks listed in `Simulation.check_*`. After the fault phase the
network heals and every node restarts; the cluster must then elect a leader and commit new
proposals within a bounded time.

Failures raise `SimulationFailure` with the seed and the last events of the trace.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import struct
from collections import deque
from collections.abc import Callable

import attrs

from controller.raft.core import NotLeader, ProposalsBlocked, RaftConfig, RaftCore
from controller.raft.messages import Message, SnapshotRequest, TimeoutNow
from controller.raft.ready import Ready
from controller.raft.types import Entry, EntryKind, LogIndex, NodeId, Snapshot, Term
from controller.sim.storage import SimStorage

TICK = 10  # time units per Raft tick; message delays are drawn in units


class SimulationFailure(AssertionError):
    """An invariant broke (or liveness failed) for a seed; the message carries the trace."""


@attrs.frozen
class SimOptions:
    """Knobs of one run; `SimOptions.for_seed` draws them from the seed."""

    voters: int = 3
    observers: int = 0
    fault_ticks: int = 600
    heal_ticks: int = 200
    catch_up_ticks: int = 1500
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    loss: float = 0.02
    duplicate: float = 0.02
    max_delay: int = 15  # units; a tick is TICK units
    long_delay: float = 0.01  # chance of a delay of several ticks (reordering)
    fault_every: int = 40  # ticks between faults, on average
    propose_every: int = 2  # ticks between proposals, on average
    snapshot_every: int = 60  # ticks between snapshots of a random node, on average
    chunk_bytes: int = 64
    max_inflight: int = 4
    max_append_entries: int = 16
    max_uncommitted: int = 200
    pre_vote: bool = True
    check_quorum: bool = True

    @classmethod
    def for_seed(cls, seed: int) -> SimOptions:
        r = random.Random(f"options-{seed}")
        return cls(
            voters=r.choice((1, 3, 3, 3, 5, 5)),
            observers=r.choice((0, 0, 1)),
            loss=r.choice((0.0, 0.01, 0.05, 0.1)),
            duplicate=r.choice((0.0, 0.02, 0.05)),
            max_delay=r.choice((2, 10, 30)),
            long_delay=r.choice((0.0, 0.01, 0.03)),
            fault_every=r.choice((15, 40, 80)),
            snapshot_every=r.choice((20, 60, 200)),
            max_inflight=r.choice((1, 4, 16)),
            max_append_entries=r.choice((2, 8, 64)),
            pre_vote=r.random() < 0.85,
            check_quorum=r.random() < 0.85,
        )


class SimStateMachine:
    """A hash chain over applied commands: equal digests mean equal applied sequences."""

    def __init__(self) -> None:
        self.index: LogIndex = 0
        self.count = 0
        self.digest = b"\0" * 32

    def apply(self, entry: Entry) -> None:
        assert entry.index == self.index + 1, (entry.index, self.index)
        self.index = entry.index
        if entry.kind is EntryKind.COMMAND:
            self.count += 1
            self.digest = hashlib.sha256(self.digest + entry.data).digest()

    def snapshot(self) -> bytes:
        # Padding makes snapshots span several chunks, exercising chunked transfer.
        return struct.pack(">QQ", self.index, self.count) + self.digest + bytes(range(200))

    def restore(self, data: bytes) -> None:
        self.index, self.count = struct.unpack_from(">QQ", data)
        self.digest = data[16:48]


class SimNode:
    """One simulated controller: a core, its storage and its state machine."""

    def __init__(self, node_id: NodeId, config: RaftConfig, seed: int) -> None:
        self.id = node_id
        self.config = config
        self.storage = SimStorage()
        self.sm = SimStateMachine()
        self.alive = True
        self.incarnation = 0
        self._seed = seed
        self.core = self._new_core()
        self.max_commit = 0
        # A pending mid-Ready crash: the stage at which processing stops.
        self.crash_at_stage: int | None = None

    def _new_core(self) -> RaftCore:
        rng = random.Random(f"{self._seed}-{self.id}-{self.incarnation}")
        return RaftCore(self.config, self.storage.recover(), rng)

    def crash(self) -> None:
        self.alive = False
        self.storage.crash()
        self.crash_at_stage = None

    def restart(self) -> None:
        assert not self.alive
        self.incarnation += 1
        self.core = self._new_core()
        self.sm = SimStateMachine()
        snap = self.storage.snapshot
        if snap is not None:
            self.sm.restore(snap.data)
        self.max_commit = self.core.commit_index
        self.alive = True


@attrs.define
class _Event:
    time: int
    seq: int
    kind: str
    payload: object = None

    def __lt__(self, other: _Event) -> bool:
        return (self.time, self.seq) < (other.time, other.seq)


class Simulation:
    """One seeded run. `run()` returns a summary dict or raises SimulationFailure."""

    def __init__(self, seed: int, options: SimOptions | None = None) -> None:
        self.seed = seed
        self.opt = options or SimOptions.for_seed(seed)
        self.rng = random.Random(seed)
        o = self.opt
        self.voters = tuple(range(1, o.voters + 1))
        self.observer_ids = tuple(range(o.voters + 1, o.voters + o.observers + 1))
        self.nodes: dict[NodeId, SimNode] = {}
        for nid in self.voters + self.observer_ids:
            cfg = RaftConfig(
                node_id=nid,
                voters=self.voters,
                observers=self.observer_ids,
                election_ticks=o.election_ticks,
                heartbeat_ticks=o.heartbeat_ticks,
                pre_vote=o.pre_vote,
                check_quorum=o.check_quorum,
                max_inflight_appends=o.max_inflight,
                max_append_entries=o.max_append_entries,
                max_uncommitted_entries=o.max_uncommitted,
                snapshot_chunk_bytes=o.chunk_bytes,
            )
            self.nodes[nid] = SimNode(nid, cfg, seed)
        self.now = 0
        self._seq = 0
        self._queue: list[_Event] = []
        self.blocked: set[tuple[NodeId, NodeId]] = set()  # (src, dst) links that drop
        self._link_clock: dict[tuple[NodeId, NodeId], int] = {}
        self.loss = o.loss
        self.duplicate = o.duplicate
        self.trace: deque[str] = deque(maxlen=400)
        # Global knowledge for the checks.
        self.committed: dict[LogIndex, Entry] = {}
        self.digest_at: dict[LogIndex, bytes] = {}
        self.leaders: dict[Term, NodeId] = {}
        self.acked: dict[bytes, LogIndex] = {}
        self._proposal_counter = 0
        self.stats = {
            "elections": 0,
            "snapshot_chunks": 0,
            "snapshots_installed": 0,
            "timeout_now": 0,
            "crashes": 0,
            "messages": 0,
        }
        self.faulting = True

    # ------------------------------------------------------------------ plumbing

    def fail(self, reason: str) -> None:
        lines = "\n".join(self.trace)
        raise SimulationFailure(
            f"seed {self.seed} failed at t={self.now}: {reason}\n"
            f"options: {self.opt}\n--- last events ---\n{lines}"
        )

    def log(self, text: str) -> None:
        self.trace.append(f"t={self.now:>6} {text}")

    def schedule(self, delay: int, kind: str, payload: object = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Event(self.now + delay, self._seq, kind, payload))

    def send(self, msg: Message) -> None:
        self.stats["messages"] += 1
        if isinstance(msg, SnapshotRequest):
            self.stats["snapshot_chunks"] += 1
        elif isinstance(msg, TimeoutNow):
            self.stats["timeout_now"] += 1
        if (msg.src, msg.dst) in self.blocked or self.rng.random() < self.loss:
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        link = (msg.src, msg.dst)
        for _ in range(copies):
            delay = self.rng.randint(1, self.opt.max_delay)
            if self.rng.random() < self.opt.long_delay:
                # A straggler: overtaken by later messages (reordering).
                delay += self.rng.randint(1, 8) * TICK
            else:
                # Links are mostly FIFO, like the TCP connections of the real node.
                delay = max(delay, self._link_clock.get(link, 0) - self.now)
                self._link_clock[link] = self.now + delay
            self.schedule(delay, "deliver", msg)

    # ------------------------------------------------------------------ ready processing

    def process(self, node: SimNode) -> None:
        core = node.core
        while node.alive and core.has_ready():
            rd = core.ready()
            if not self._handle_ready(node, rd):
                return
            core.advance(rd)
            self.check_node(node, rd)

    def _handle_ready(self, node: SimNode, rd: Ready) -> bool:
        """Run the host loop for one Ready; False if the node crashed in the middle."""
        stage = node.crash_at_stage

        def crash_here(s: int) -> bool:
            if stage == s:
                self.log(f"n{node.id} crashes mid-ready at stage {s}")
                node.crash()
                self.schedule(self.rng.randint(5, 60) * TICK, "restart", node.id)
                return True
            return False

        if crash_here(0):
            return False
        for m in rd.early_messages:
            self.send(m)
        if crash_here(1):
            return False
        st = node.storage
        if rd.snapshot is not None:
            st.install_snapshot(rd.snapshot)
            node.sm.restore(rd.snapshot.data)
            self.log(f"n{node.id} installed snapshot at {rd.snapshot.meta.index}")
            self.stats["snapshots_installed"] += 1
            self.check_digest(node)
        st.append(rd.entries)
        if crash_here(2):
            return False
        if rd.hard_state is not None:
            st.save_hard_state(rd.hard_state)
        if rd.must_sync:
            st.sync()
        if crash_here(3):
            return False
        for m in rd.messages:
            self.send(m)
        for e in rd.committed:
            node.sm.apply(e)
            self.record_committed(node, e)
        if rd.soft_state is not None:
            ss = rd.soft_state
            self.log(f"n{node.id} is {ss.role} term {ss.term} leader {ss.leader_id}")
            if ss.role == "leader":
                self.on_new_leader(node, ss.term)
        return True

    # ------------------------------------------------------------------ checks

    def record_committed(self, node: SimNode, e: Entry) -> None:
        seen = self.committed.get(e.index)
        if seen is None:
            self.committed[e.index] = e
            if e.kind is EntryKind.COMMAND:
                self.acked[e.data] = e.index
        elif seen != e:
            self.fail(f"n{node.id} applied {e} at {e.index} but {seen} was committed there")
        self.check_digest(node)

    def check_digest(self, node: SimNode) -> None:
        known = self.digest_at.get(node.sm.index)
        if known is None:
            self.digest_at[node.sm.index] = node.sm.digest
        elif known != node.sm.digest:
            self.fail(f"n{node.id} state diverged at index {node.sm.index}")

    def on_new_leader(self, node: SimNode, term: Term) -> None:
        self.stats["elections"] += 1
        other = self.leaders.setdefault(term, node.id)
        if other != node.id:
            self.fail(f"two leaders in term {term}: n{other} and n{node.id}")
        # Leader completeness: every entry known committed is in the new leader's log.
        core = node.core
        for index, e in self.committed.items():
            if index <= core.first_index - 1:
                continue
            if core.term_at(index) != e.term:
                self.fail(
                    f"leader n{node.id} (term {term}) lacks committed entry {index} "
                    f"(has term {core.term_at(index)}, committed term {e.term})"
                )

    def check_node(self, node: SimNode, rd: Ready) -> None:
        core = node.core
        if core.commit_index < node.max_commit:
            self.fail(f"n{node.id} commit went back {node.max_commit} -> {core.commit_index}")
        node.max_commit = core.commit_index
        if core.applied_index != node.sm.index:
            self.fail(f"n{node.id} applied {core.applied_index} but machine at {node.sm.index}")
        if core.is_leader and self.leaders.get(core.term) != node.id:
            self.fail(f"n{node.id} leads term {core.term} unannounced")

    def check_log_matching(self) -> None:
        """If two logs hold an entry with the same index and term, they agree up to it."""
        alive = [n.core for n in self.nodes.values() if n.alive]
        for i, a in enumerate(alive):
            for b in alive[i + 1 :]:
                lo = max(a.first_index, b.first_index)
                hi = min(a.last_index, b.last_index)
                top = hi
                while top >= lo and a.term_at(top) != b.term_at(top):
                    top -= 1
                if top < lo:
                    continue
                if a.entries(lo, top) != b.entries(lo, top):
                    self.fail(f"log matching broken between n{a.node_id} and n{b.node_id}")

    # ------------------------------------------------------------------ faults and load

    def random_fault(self) -> None:
        r = self.rng
        ids = list(self.nodes)
        kind = r.choice(("partition", "isolate", "oneway", "heal", "crash", "crash_mid"))
        if kind == "partition" and len(ids) > 1:
            r.shuffle(ids)
            cut = r.randint(1, len(ids) - 1)
            a, b = set(ids[:cut]), set(ids[cut:])
            self.blocked = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
            self.log(f"partition {sorted(a)} | {sorted(b)}")
        elif kind == "isolate":
            x = r.choice(ids)
            self.blocked = {(x, y) for y in ids if y != x} | {(y, x) for y in ids if y != x}
            self.log(f"isolate n{x}")
        elif kind == "oneway" and len(ids) > 1:
            x, y = r.sample(ids, 2)
            self.blocked = self.blocked | {(x, y)}
            self.log(f"drop n{x} -> n{y}")
        elif kind == "heal":
            self.blocked = set()
            self.log("heal network")
        elif kind in ("crash", "crash_mid"):
            live = [n for n in self.nodes.values() if n.alive]
            if not live:
                return
            node = r.choice(live)
            self.stats["crashes"] += 1
            if kind == "crash":
                self.log(f"crash n{node.id}")
                node.crash()
                self.schedule(r.randint(5, 80) * TICK, "restart", node.id)
            else:
                node.crash_at_stage = r.randint(0, 3)

    def maybe_transfer(self) -> None:
        leaders = [n for n in self.nodes.values() if n.alive and n.core.is_leader]
        if leaders:
            node = self.rng.choice(leaders)
            self.log(f"n{node.id} transfers leadership")
            node.core.transfer_leadership()

    def propose(self) -> bool:
        """Propose a small batch to a node that believes it leads; True if accepted."""
        leaders = [n for n in self.nodes.values() if n.alive and n.core.is_leader]
        if not leaders:
            return False
        node = self.rng.choice(leaders)
        batch = []
        for _ in range(self.rng.randint(1, 5)):
            self._proposal_counter += 1
            batch.append(f"cmd-{self._proposal_counter}".encode())
        try:
            node.core.propose(batch)
        except (NotLeader, ProposalsBlocked):
            return False
        return True

    def take_snapshot(self) -> None:
        live = [n for n in self.nodes.values() if n.alive]
        if not live:
            return
        node = self.rng.choice(live)
        core = node.core
        if core.applied_index <= core.first_index:
            return
        meta = core.snapshot_meta(core.applied_index)
        snap = Snapshot(meta, node.sm.snapshot())
        node.storage.save_snapshot(snap)
        core.compact(snap)
        node.storage.compact(meta.index)
        self.log(f"n{node.id} snapshot at {meta.index}")

    # ------------------------------------------------------------------ main loop

    def handle(self, ev: _Event) -> None:
        if ev.kind == "tick":
            order = list(self.nodes.values())
            self.rng.shuffle(order)
            for node in order:
                if node.alive:
                    node.core.tick()
                    self.process(node)
            self.schedule(TICK, "tick")
        elif ev.kind == "deliver":
            msg = ev.payload
            assert isinstance(msg, Message)
            node = self.nodes[msg.dst]
            if not node.alive or (msg.src, msg.dst) in self.blocked:
                return
            node.core.step(msg)
            self.process(node)
        elif ev.kind == "propose":
            self.propose()
        elif ev.kind == "restart":
            nid = ev.payload
            assert isinstance(nid, int)
            node = self.nodes[nid]
            if not node.alive:
                node.restart()
                self.log(f"restart n{nid} (term {node.core.term}, last {node.core.last_index})")
                self.check_digest(node)
                self.process(node)

    def _every(self, mean_ticks: int) -> bool:
        return self.rng.random() < 1.0 / max(1, mean_ticks)

    def run_until(self, end: int, each_tick: Callable[[], None]) -> None:
        while self._queue and self._queue[0].time <= end:
            ev = heapq.heappop(self._queue)
            self.now = ev.time
            if ev.kind == "tick":
                each_tick()
            self.handle(ev)

    def run(self) -> dict[str, int]:
        o = self.opt
        self.schedule(0, "tick")
        ticks = 0

        def fault_phase() -> None:
            nonlocal ticks
            ticks += 1
            if self._every(o.fault_every):
                self.random_fault()
            if self._every(o.fault_every * 2):
                self.maybe_transfer()
            if self._every(o.propose_every):
                # Its own event, not followed by Ready processing: later messages are
                # stepped before the proposal is persisted, as in the real node.
                self.schedule(self.rng.randint(1, TICK - 1), "propose")
            if self._every(o.snapshot_every):
                self.take_snapshot()
            if ticks % 25 == 0:
                self.check_log_matching()

        self.run_until(o.fault_ticks * TICK, fault_phase)

        # Heal: full connectivity, every node up, no loss. Liveness must follow.
        self.faulting = False
        self.blocked = set()
        self.loss = 0.0
        self.log("--- heal: network repaired, all nodes restarted ---")
        for node in self.nodes.values():
            node.crash_at_stage = None
            if not node.alive:
                node.restart()
                self.process(node)
        start = self.now
        attempt: tuple[NodeId, Term] | None = None
        finals: list[bytes] = []

        def heal_phase() -> None:
            # (Re)propose a marker until one commits: a leader may lose its uncommitted
            # proposal when it is deposed, exactly as a real client would retry.
            nonlocal attempt
            if attempt is not None:
                node = self.nodes[attempt[0]]
                if node.core.is_leader and node.core.term == attempt[1]:
                    return
            for node in self.nodes.values():
                if node.core.is_leader:
                    marker = f"final-{len(finals)}".encode()
                    try:
                        node.core.propose([marker])
                    except (NotLeader, ProposalsBlocked):
                        return
                    finals.append(marker)
                    attempt = (node.id, node.core.term)
                    return

        # Election liveness: a leader that can commit within `heal_ticks`; catch-up of every
        # replica (bounded by the backlog the faults left behind) within a larger bound.
        deadline = start + o.heal_ticks * TICK
        while self.now < deadline and not any(n.core.is_leader for n in self.nodes.values()):
            self.run_until(self.now + TICK, heal_phase)
        if not any(n.core.is_leader for n in self.nodes.values()):
            self.fail(f"no leader {o.heal_ticks} ticks after healing: {self._roles()}")
        deadline = self.now + o.catch_up_ticks * TICK
        while self.now < deadline:
            self.run_until(self.now + TICK, heal_phase)
            if self._all_caught_up(finals):
                break
        else:
            self.fail(f"no commit {o.catch_up_ticks} ticks after a leader: {self._roles()}")
        self.check_log_matching()
        self.stats["heal_ticks"] = (self.now - start) // TICK
        self.stats["committed"] = len(self.committed)
        return self.stats

    def _roles(self) -> list[tuple[NodeId, str, Term, LogIndex, LogIndex]]:
        return [
            (n.id, n.core.role, n.core.term, n.core.commit_index, n.core.last_index)
            for n in self.nodes.values()
        ]

    def _all_caught_up(self, finals: list[bytes]) -> bool:
        done = [self.acked[f] for f in finals if f in self.acked]
        return bool(done) and all(n.core.applied_index >= min(done) for n in self.nodes.values())


def run_seed(seed: int) -> dict[str, int]:
    """Run one seed with its drawn options (the entry point used by the tests)."""
    return Simulation(seed).run()
