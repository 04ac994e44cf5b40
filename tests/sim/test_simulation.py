"""Seeded simulation of the shipped Raft core (see controller/sim/simulation.py).

`pytest tests/sim --seeds N --seed-start S` runs other seeds; a failure prints the seed, the
drawn options and the last events of the trace. Reproduce one with
`python -m controller.sim SEED`.
"""

from __future__ import annotations

import attrs
import pytest

from controller.sim import SimOptions, Simulation, SimulationFailure, run_seed

CI_SEEDS = 500
# Every seed that ever failed (the simulator's options and fault mix have changed since some
# of them did, so they now run other schedules; the kinds they found have unit tests too).
# 104375: a far-behind node (pre-vote off) kept restarting the others' election timers.
# 9, 17, 204, 276: first runs of the new liveness checks (bounds, lost and reordered links).
REGRESSION_SEEDS = (104375, 9, 17, 204, 276)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed" in metafunc.fixturenames:
        count = metafunc.config.getoption("--seeds") or CI_SEEDS
        start = metafunc.config.getoption("--seed-start")
        metafunc.parametrize("seed", range(start, start + count))


def test_seed(seed: int) -> None:
    stats = run_seed(seed)
    assert stats["committed"] > 0


@pytest.mark.parametrize("old_seed", REGRESSION_SEEDS)
def test_seed_that_once_failed(old_seed: int) -> None:
    assert run_seed(old_seed)["committed"] > 0


def test_same_seed_same_run() -> None:
    assert run_seed(7) == run_seed(7)


def test_simulation_covers_the_faults_it_claims() -> None:
    totals: dict[str, int] = {}
    for seed in range(40):
        for key, value in run_seed(seed).items():
            totals[key] = totals.get(key, 0) + value
    keys = ("crashes", "snapshots_installed", "snapshot_chunks", "timeout_now", "elections")
    for key in (*keys, "slow_fsyncs"):
        assert totals[key] > 0, (key, totals)
    drawn = [SimOptions.for_seed(seed) for seed in range(40)]
    assert any(o.laggard for o in drawn)
    assert any(o.skewed_node and o.skew == "fast" for o in drawn)
    assert any(o.skewed_node and o.skew == "slow" for o in drawn)
    assert any(not o.pre_vote for o in drawn) and any(not o.check_quorum for o in drawn)


def test_a_far_behind_laggard_needs_a_snapshot_and_a_leader_still_follows() -> None:
    """The laggard scenario: cut off for most of the run, it comes back behind the
    others' snapshots; with pre-vote off it campaigns with ever higher terms."""
    options = attrs.evolve(
        SimOptions.for_seed(1),
        voters=3,
        observers=0,
        laggard=True,
        pre_vote=False,
        snapshot_every=20,
        fault_every=10**9,
        loss=0.0,
    )
    stats = Simulation(11, options).run()
    assert stats["snapshots_installed"] > 0
    assert stats["leader_after_heal_ticks"] <= 12 * options.election_ticks


def test_responses_only_drops_and_a_slow_leader_disk_keep_the_quorum_live() -> None:
    options = attrs.evolve(
        SimOptions.for_seed(2),
        voters=3,
        observers=0,
        slow_leader_disk_ticks=6,
        skewed_node=0,
        fault_every=15,
    )
    stats = Simulation(12, options).run()
    assert stats["slow_fsyncs"] > 0 and stats["committed"] > 0


def test_a_broken_core_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A voter that forgets Raft's up-to-date check (§5.4.1) must be detected: some leader
    then lacks a committed entry. (Figure 8's commit bug has its own deterministic test in
    tests/raft: the random schedules reach it too rarely to be a fast check.)"""
    from controller.raft import core as core_module
    from controller.raft.messages import VoteRequest, VoteResponse

    original = core_module.RaftCore._handle_vote_request

    def careless_vote(self: core_module.RaftCore, msg: VoteRequest) -> None:
        if msg.pre_vote:
            original(self, msg)
            return
        grant = self._is_voter and not self.is_leader and self._voted_for in (None, msg.src)
        if grant:
            self._voted_for = msg.src
        self._send(VoteResponse(self._term, self._id, msg.src, grant))

    monkeypatch.setattr(core_module.RaftCore, "_handle_vote_request", careless_vote)
    # Seed 7 exposes it today; if the simulator changes, search a bounded range.
    for seed in [7, *range(300)]:
        try:
            Simulation(seed).run()
        except SimulationFailure as failure:
            assert "lacks committed entry" in str(failure) or "diverged" in str(failure)
            return
    pytest.fail("the simulator did not detect careless voting in 300 seeds")


def test_quiet_network_elects_once() -> None:
    stats = Simulation(
        3, SimOptions(voters=3, loss=0.0, duplicate=0.0, fault_every=10**9, long_delay=0.0)
    ).run()
    assert stats["elections"] == 1
    assert stats["crashes"] == 0
