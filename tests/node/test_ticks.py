"""Ticks on demand (`controller/node/ticks.py`): the clock's bookkeeping, and that the
node's `ticks_until_due` never sleeps past a tick on which a real core acts."""

from __future__ import annotations

import copy
import random

import pytest

from controller.node.ticks import (
    MAX_IDLE_TICKS,
    STALL_TICKS,
    WATCH_TICKS,
    TickClock,
    ticks_until_due,
)
from controller.raft.core import InitialState, RaftConfig, RaftCore
from controller.raft.messages import Message

P = 0.01


def test_clock_hands_over_fired_ticks_lazily_and_plans_ahead() -> None:
    clock = TickClock(P, 100.0)
    assert clock.wake_time() == pytest.approx(100.01)
    clock.plan(0, 5, 100.0)  # the core acts on its 5th tick
    assert clock.wake_time() == pytest.approx(100.05)
    assert clock.fire(100.031) == 3  # a message at 31 ms: the 3 ticks before it first
    assert clock.fire(100.032) == 0
    assert clock.fire(100.05) == 2  # the ticker at the due tick
    # Until the loop plans again (it may be busy with an fsync): one tick per period.
    assert clock.wake_time() == pytest.approx(100.06)
    assert clock.fire(100.061) == 1
    clock.plan(6, 20, 100.061)
    assert clock.due_time() == pytest.approx(100.26)
    # With nothing happening the ticker still looks in after WATCH_TICKS...
    assert clock.wake_time() == pytest.approx(100.061 + WATCH_TICKS * P)
    assert clock.fire(clock.wake_time()) == WATCH_TICKS
    # ... while activity (a heartbeat every 50 ms) keeps pushing that back.
    for t in (100.19, 100.24):
        clock.fire(t)
        assert clock.wake_time() == pytest.approx(100.26)
    assert clock.fire(100.26) == 2
    assert clock.stalls == 0


def test_plan_never_goes_behind_ticks_already_handed_over() -> None:
    clock = TickClock(P, 0.0)
    clock.plan(0, 30, 0.0)
    assert clock.fire(0.1) == 10
    clock.plan(0, 5, 0.1)  # the loop has not applied those 10 yet
    assert clock.planned == 11


def test_a_stall_counts_none_of_the_stalled_time() -> None:
    # A follower whose election timeout ends at tick 20 last heard its leader at 0 ms;
    # then the process stalls (e.g. serializing a snapshot) until 250 ms.
    clock = TickClock(P, 0.0)
    clock.plan(0, 20, 0.0)
    assert clock.fire(0.25) == WATCH_TICKS  # not 25: no election before reading the socket
    assert clock.stalls == 1
    assert clock.planned == 20  # still due at tick 20, now counted from the stall's end
    assert clock.fire(0.251) == 0
    clock.plan(WATCH_TICKS, 20 - WATCH_TICKS, 0.251)
    assert clock.due_time() == pytest.approx(0.25 + (20 - WATCH_TICKS) * P)


def test_a_stall_past_the_due_tick_delivers_it_one_period_later() -> None:
    clock = TickClock(P, 0.0)
    clock.plan(0, 3, 0.0)  # a leader: heartbeat due at tick 3
    assert clock.fire(0.2) == 2
    assert clock.stalls == 1
    assert 0.2 < clock.wake_time() <= 0.2 + P
    assert clock.fire(clock.wake_time()) == 1


def test_a_slightly_late_wake_is_not_a_stall() -> None:
    clock = TickClock(P, 0.0)
    clock.plan(0, 5, 0.0)
    assert clock.fire(0.05 + (STALL_TICKS - 1) * P) == 5 + STALL_TICKS - 1
    assert clock.stalls == 0


# ---------------------------------------------------------------------- against a real core


class _Net:
    def __init__(self, seed: int) -> None:
        voters = (1, 2, 3)
        self.cores = {
            n: RaftCore(RaftConfig(n, voters, (4,)), InitialState(), random.Random(seed * 10 + n))
            for n in (*voters, 4)
        }
        self.rng = random.Random(seed)

    def settle(self, drop: float) -> None:
        queue: list[Message] = []
        for _ in range(100):
            for core in self.cores.values():
                while core.has_ready():
                    rd = core.ready()
                    queue.extend(rd.early_messages)
                    queue.extend(rd.messages)
                    core.advance(rd)
            if not queue:
                return
            for msg in queue:
                if self.rng.random() >= drop:
                    self.cores[msg.dst].step(msg)
            queue = []


def _acts_within(core: RaftCore, ticks: int) -> int | None:
    """The first of `ticks` lone ticks on which (a copy of) `core` does something."""
    probe = copy.deepcopy(core)
    before = (probe.role, probe.term, probe.leader_id, probe.transferring)
    for i in range(1, ticks + 1):
        probe.tick()
        if probe.has_ready() or (probe.role, probe.term, probe.leader_id, probe.transferring) != (
            before
        ):
            return i
    return None


@pytest.mark.parametrize("seed", range(6))
def test_ticks_until_due_never_skips_a_tick_on_which_the_core_acts(seed: int) -> None:
    net = _Net(seed)
    rng = random.Random(seed)
    checked = exact = 0
    for step in range(400):
        net.settle(drop=0.3 if step % 100 < 50 else 0.0)
        for core in net.cores.values():
            if core.has_ready():
                continue
            due = ticks_until_due(core)
            assert 1 <= due <= MAX_IDLE_TICKS
            acted = _acts_within(core, due)
            assert acted is None or acted >= due, (core.role, due, acted)
            checked += 1
            exact += acted == due
        if rng.random() < 0.05:
            leader = next((c for c in net.cores.values() if c.is_leader), None)
            if leader is not None:
                leader.transfer_leadership()
        for core in net.cores.values():
            if rng.random() < 0.9:  # some nodes fall behind in time
                core.tick()
    assert checked > 1000
    assert exact > checked // 10  # the prediction is the due tick, not merely "later"
