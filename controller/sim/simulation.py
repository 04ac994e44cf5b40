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
from controller.raft.messages import (
    AppendResponse,
    HeartbeatResponse,
    Message,
    SnapshotRequest,
    SnapshotResponse,
    TimeoutNow,
    VoteResponse,
)
from controller.raft.ready import Ready
from controller.raft.types import Entry, EntryKind, LogIndex, NodeId, Snapshot, Term
from controller.sim.liveness import HealMonitor
from controller.sim.options import TICK, SimOptions
from controller.sim.storage import SimStorage

RESPONSES = (AppendResponse, HeartbeatResponse, VoteResponse, SnapshotResponse)


class SimulationFailure(AssertionError):
    """An invariant broke (or liveness failed) for a seed; the message carries the trace."""


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
        # A Ready whose fsync is still running (slow disk), and the inputs (messages and
        # ticks) that queue up meanwhile, as in the real node's inbox.
        self.syncing: Ready | None = None
        self.backlog: list[Message | None] = []  # None stands for a tick

    def _new_core(self) -> RaftCore:
        rng = random.Random(f"{self._seed}-{self.id}-{self.incarnation}")
        return RaftCore(self.config, self.storage.recover(), rng)

    def crash(self) -> None:
        self.alive = False
        self.storage.crash()
        self.crash_at_stage = None
        self.syncing = None
        self.backlog = []

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
        self.laggard_cut: set[tuple[NodeId, NodeId]] = set()  # the laggard's links
        self.response_blocked: set[tuple[NodeId, NodeId]] = set()  # drop answers only
        self.long_delay = o.long_delay
        # link -> last time a message on it was lost or overtaken (a straggler)
        self.last_disorder: dict[tuple[NodeId, NodeId], int] = {}
        self.leader_since: dict[Term, int] = {}  # when each term's leader took over
        self.monitor: HealMonitor | None = None
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
            "slow_fsyncs": 0,
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
        if self.cut_off(msg) or self.rng.random() < self.loss:
            self.last_disorder[(msg.src, msg.dst)] = self.now
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        link = (msg.src, msg.dst)
        for _ in range(copies):
            delay = self.rng.randint(1, self.opt.max_delay)
            if self.rng.random() < self.long_delay:
                # A straggler: overtaken by later messages (reordering).
                delay += self.rng.randint(1, 8) * TICK
                self.last_disorder[link] = self.now
            else:
                # Links are mostly FIFO, like the TCP connections of the real node.
                delay = max(delay, self._link_clock.get(link, 0) - self.now)
                self._link_clock[link] = self.now + delay
            self.schedule(delay, "deliver", msg)

    def cut_off(self, msg: Message) -> bool:
        link = (msg.src, msg.dst)
        if link in self.blocked or link in self.laggard_cut:
            return True
        return link in self.response_blocked and isinstance(msg, RESPONSES)

    # ------------------------------------------------------------------ ready processing

    def process(self, node: SimNode) -> None:
        core = node.core
        while node.alive and node.syncing is None and core.has_ready():
            was_leader = core.is_leader
            rd = core.ready()
            if not self._ready_early(node, rd):
                return
            slow = self.opt.slow_leader_disk_ticks
            if slow and was_leader and rd.must_sync:
                # The fsync blocks this node's loop; inputs queue until it returns.
                node.syncing = rd
                self.stats["slow_fsyncs"] += 1
                self.schedule(slow * TICK, "fsync_done", (node.id, node.incarnation))
                return
            if not self._finish_ready(node, rd):
                return

    def _finish_ready(self, node: SimNode, rd: Ready) -> bool:
        if not self._ready_durable(node, rd):
            return False
        node.core.advance(rd)
        self.check_node(node, rd)
        if self.monitor is not None:
            self.monitor.after_ready(node)
        return True

    def _fsync_done(self, node: SimNode) -> None:
        rd = node.syncing
        assert rd is not None
        node.syncing = None
        if not self._finish_ready(node, rd):
            return
        while node.backlog and node.alive and node.syncing is None:
            item = node.backlog.pop(0)
            if item is None:
                node.core.tick()
            else:
                node.core.step(item)
            self.process(node)

    def _crash_here(self, node: SimNode, stage: int) -> bool:
        if node.crash_at_stage == stage:
            self.log(f"n{node.id} crashes mid-ready at stage {stage}")
            node.crash()
            self.schedule(self.rng.randint(5, 60) * TICK, "restart", node.id)
            return True
        return False

    def _ready_early(self, node: SimNode, rd: Ready) -> bool:
        """Host loop up to the fsync; False if the node crashed in the middle."""
        if self._crash_here(node, 0):
            return False
        for m in rd.early_messages:
            self.send(m)
        return not self._crash_here(node, 1)

    def _ready_durable(self, node: SimNode, rd: Ready) -> bool:
        """Host loop from persistence on; False if the node crashed in the middle."""
        st = node.storage
        if rd.snapshot is not None:
            st.install_snapshot(rd.snapshot)
            node.sm.restore(rd.snapshot.data)
            self.log(f"n{node.id} installed snapshot at {rd.snapshot.meta.index}")
            self.stats["snapshots_installed"] += 1
            self.check_digest(node)
        st.append(rd.entries)
        if self._crash_here(node, 2):
            return False
        if rd.hard_state is not None:
            st.save_hard_state(rd.hard_state)
        if rd.must_sync:
            st.sync()
        if self._crash_here(node, 3):
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
        self.leader_since.setdefault(term, self.now)
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
        kind = r.choice(
            ("partition", "isolate", "oneway", "responses", "heal", "crash", "crash_mid")
        )
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
        elif kind == "responses" and len(ids) > 1:
            # Asymmetric: requests get through, their answers do not.
            x, y = r.sample(ids, 2)
            self.response_blocked = self.response_blocked | {(x, y)}
            self.log(f"drop responses n{x} -> n{y}")
        elif kind == "heal":
            self.blocked = set()
            self.response_blocked = set()
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

    def _idle_leaders(self) -> list[SimNode]:
        # A node blocked in fsync takes no input (the real node proposes between Readies).
        return [
            n for n in self.nodes.values() if n.alive and n.syncing is None and n.core.is_leader
        ]

    def maybe_transfer(self) -> None:
        leaders = self._idle_leaders()
        if leaders:
            node = self.rng.choice(leaders)
            self.log(f"n{node.id} transfers leadership")
            node.core.transfer_leadership()

    def propose(self) -> bool:
        """Propose a small batch to a node that believes it leads; True if accepted."""
        leaders = self._idle_leaders()
        if not leaders:
            return False
        node = self.rng.choice(leaders)
        batch = []
        for _ in range(self.rng.randint(1, 5)):
            self._proposal_counter += 1
            batch.append(f"cmd-{self._proposal_counter}".encode())
        try:
            index, _ = node.core.propose(batch)
        except (NotLeader, ProposalsBlocked):
            return False
        if self.monitor is not None and self.monitor.steady_from is not None:
            self.monitor.proposed(node, index)
        return True

    def take_snapshot(self) -> None:
        live = [n for n in self.nodes.values() if n.alive and n.syncing is None]
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
            even = (self.now // TICK) % 2 == 0
            skewed = self.opt.skewed_node
            for node in order:
                if node.id == skewed and self.opt.skew == "slow" and not even:
                    continue  # this clock runs at half speed
                self.tick_node(node)
            if skewed and self.opt.skew == "fast":
                self.schedule(TICK // 2, "tick_one", skewed)
            self.schedule(TICK, "tick")
        elif ev.kind == "tick_one":
            assert isinstance(ev.payload, int)
            self.tick_node(self.nodes[ev.payload])
        elif ev.kind == "deliver":
            msg = ev.payload
            assert isinstance(msg, Message)
            node = self.nodes[msg.dst]
            if not node.alive or self.cut_off(msg):
                self.last_disorder[(msg.src, msg.dst)] = self.now
                return
            if node.syncing is not None:
                node.backlog.append(msg)
                return
            node.core.step(msg)
            self.process(node)
        elif ev.kind == "fsync_done":
            assert isinstance(ev.payload, tuple)
            nid, incarnation = ev.payload
            node = self.nodes[nid]
            if node.alive and node.incarnation == incarnation and node.syncing is not None:
                self._fsync_done(node)
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

    def tick_node(self, node: SimNode) -> None:
        if not node.alive:
            return
        if node.syncing is not None:
            node.backlog.append(None)
            return
        node.core.tick()
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

        if o.laggard:
            # One voter is cut off for most of the fault phase: it comes back far behind,
            # past the others' snapshots, and (pre-vote off) campaigns with higher terms.
            lag = self.rng.choice(self.voters)
            others = [n for n in self.nodes if n != lag]
            self.laggard_cut = {(lag, n) for n in others} | {(n, lag) for n in others}
            self.log(f"laggard n{lag} cut off")
            self.run_until(o.fault_ticks * 3 // 4 * TICK, fault_phase)
            self.laggard_cut = set()
            self.log(f"laggard n{lag} rejoins")
        self.run_until(o.fault_ticks * TICK, fault_phase)

        # Heal: full connectivity, every node up, no loss. Liveness must follow.
        self.faulting = False
        self.blocked = set()
        self.response_blocked = set()
        self.laggard_cut = set()
        self.loss = 0.0
        self.long_delay = 0.0
        self.log("--- heal: network repaired, all nodes restarted ---")
        monitor = self.monitor = HealMonitor(self)
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
            monitor.check()
            if attempt is not None:
                node = self.nodes[attempt[0]]
                if node.core.is_leader and node.core.term == attempt[1]:
                    return
            for node in self._idle_leaders():
                marker = f"final-{len(finals)}".encode()
                try:
                    node.core.propose([marker])
                except (NotLeader, ProposalsBlocked):
                    return
                finals.append(marker)
                attempt = (node.id, node.core.term)
                return

        # Election liveness: a leader within a few election timeouts; catch-up of every
        # replica (bounded by the backlog the faults left behind) within a larger bound.
        bound = monitor.leader_bound_ticks()
        deadline = start + bound * TICK
        while self.now < deadline and not self._leader_exists():
            self.run_until(self.now + TICK, heal_phase)
        if not self._leader_exists():
            self.fail(f"no leader {bound} ticks after healing: {self._roles()}")
        self.stats["leader_after_heal_ticks"] = (self.now - start) // TICK
        deadline = self.now + o.catch_up_ticks * TICK
        while self.now < deadline:
            self.run_until(self.now + TICK, heal_phase)
            if self._all_caught_up(finals):
                break
        else:
            self.fail(f"no commit {o.catch_up_ticks} ticks after a leader: {self._roles()}")
        self.stats["heal_ticks"] = (self.now - start) // TICK

        # Steady: a healthy, caught-up quorum under load keeps its leader and its terms,
        # commits within round trips, and tells every follower at once.
        monitor.begin_steady()

        def steady_phase() -> None:
            monitor.check()
            if self._every(o.propose_every):
                self.schedule(self.rng.randint(1, TICK - 1), "propose")

        self.run_until(self.now + o.steady_ticks * TICK, steady_phase)
        monitor.check()
        self.check_log_matching()
        self.stats["committed"] = len(self.committed)
        return self.stats

    def _leader_exists(self) -> bool:
        return any(n.core.is_leader for n in self.nodes.values())

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
