"""Seeded simulation of the shipped Raft core (see controller/sim/simulation.py).

`pytest tests/sim --seeds N --seed-start S` runs other seeds; a failure prints the seed, the
drawn options and the last events of the trace. Reproduce one with
`python -m controller.sim SEED`.
"""

from __future__ import annotations

import pytest

from controller.sim import SimOptions, Simulation, SimulationFailure, run_seed

CI_SEEDS = 500


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed" in metafunc.fixturenames:
        count = metafunc.config.getoption("--seeds") or CI_SEEDS
        start = metafunc.config.getoption("--seed-start")
        metafunc.parametrize("seed", range(start, start + count))


def test_seed(seed: int) -> None:
    stats = run_seed(seed)
    assert stats["committed"] > 0


def test_same_seed_same_run() -> None:
    assert run_seed(7) == run_seed(7)


def test_simulation_covers_the_faults_it_claims() -> None:
    totals: dict[str, int] = {}
    for seed in range(40):
        for key, value in run_seed(seed).items():
            totals[key] = totals.get(key, 0) + value
    for key in ("crashes", "snapshots_installed", "snapshot_chunks", "timeout_now", "elections"):
        assert totals[key] > 0, (key, totals)


def test_a_broken_core_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting replicas of an older term's entry (Raft's Figure 8 bug) must be detected."""
    from controller.raft import core as core_module

    def unsafe_commit(self: core_module.RaftCore) -> None:
        me = self._progress[self._id]
        me.match = self._log.persisted_index
        matches = sorted((self._progress[v].match for v in self._voters), reverse=True)
        candidate = matches[self._quorum - 1]
        if candidate > self.commit_index:
            self.commit_index = candidate
            self._commit_dirty = True

    monkeypatch.setattr(core_module.RaftCore, "_maybe_commit", unsafe_commit)
    # Seed 152 exposes it today; if the simulator changes, search a bounded range.
    for seed in [152, *range(1000)]:
        try:
            Simulation(seed).run()
        except SimulationFailure as failure:
            assert "committed" in str(failure) or "diverged" in str(failure), failure
            return
    pytest.fail("the simulator did not detect an unsafe commit rule in 1000 seeds")


def test_quiet_network_elects_once() -> None:
    stats = Simulation(
        3, SimOptions(voters=3, loss=0.0, duplicate=0.0, fault_every=10**9, long_delay=0.0)
    ).run()
    assert stats["elections"] == 1
    assert stats["crashes"] == 0
