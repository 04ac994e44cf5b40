"""`python -m controller.sim SEED [COUNT]`: run seeds and print their statistics or trace."""

from __future__ import annotations

import sys

from controller.sim.simulation import SimulationFailure, run_seed


def main(argv: list[str]) -> int:
    start = int(argv[0]) if argv else 0
    count = int(argv[1]) if len(argv) > 1 else 1
    for seed in range(start, start + count):
        try:
            stats = run_seed(seed)
        except SimulationFailure as failure:
            print(failure)
            return 1
        print(f"seed {seed}: {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
