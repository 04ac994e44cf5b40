"""Deterministic simulator: the shipped Raft core over a seeded faulty network."""

from controller.sim.options import SimOptions
from controller.sim.simulation import Simulation, SimulationFailure, run_seed

__all__ = ["SimOptions", "Simulation", "SimulationFailure", "run_seed"]
