"""Run simulator seeds.

    python -m controller.sim SEED            # one seed: its statistics, or the failure trace
    python -m controller.sim START COUNT [--jobs N]
                                             # many seeds in N processes: a summary, and the
                                             # first line of every failing seed

Exit status 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time

from controller.sim.options import SimOptions
from controller.sim.simulation import SimulationFailure, run_seed


def _run(seed: int) -> tuple[int, dict[str, int] | None, str]:
    try:
        return seed, run_seed(seed), ""
    except SimulationFailure as failure:
        return seed, None, str(failure)


def _summary(results: list[tuple[int, dict[str, int] | None, str]], seconds: float) -> str:
    ok = [stats for _, stats, _ in results if stats is not None]
    lines = [f"{len(results)} seeds, {len(results) - len(ok)} failed, {seconds:.0f} s"]
    if ok:
        waits = sorted(s["leader_after_heal_ticks"] for s in ok)
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
        lines.append(
            "leader after heal (ticks; election timeout = 10): "
            f"median {statistics.median(waits):.0f}, p99 {p99}, max {waits[-1]}"
        )
        totals: dict[str, int] = {}
        for stats in ok:
            for key, value in stats.items():
                totals[key] = totals.get(key, 0) + value
        shown = ("elections", "crashes", "snapshots_installed", "timeout_now", "slow_fsyncs")
        lines.append("totals: " + ", ".join(f"{k} {totals.get(k, 0)}" for k in shown))
    scenarios = {"laggard": 0, "slow leader disk": 0, "skewed clock": 0, "pre-vote off": 0}
    for seed, _, _ in results:
        o = SimOptions.for_seed(seed)
        scenarios["laggard"] += o.laggard
        scenarios["slow leader disk"] += bool(o.slow_leader_disk_ticks)
        scenarios["skewed clock"] += bool(o.skewed_node)
        scenarios["pre-vote off"] += not o.pre_vote
    lines.append("seeds with: " + ", ".join(f"{k} {v}" for k, v in scenarios.items()))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.sim")
    parser.add_argument("start", type=int, nargs="?", default=0, help="first seed")
    parser.add_argument("count", type=int, nargs="?", default=1, help="number of seeds")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)"
    )
    args = parser.parse_args(argv)
    if args.count == 1:
        seed, stats, failure = _run(args.start)
        print(failure or f"seed {seed}: {stats}")
        return 1 if failure else 0
    seeds = range(args.start, args.start + args.count)
    began = time.monotonic()
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        results = []
        for seed, stats, failure in pool.imap_unordered(_run, seeds, chunksize=20):
            results.append((seed, stats, failure))
            if failure:
                print(failure.splitlines()[0], flush=True)
    results.sort()
    print(_summary(results, time.monotonic() - began))
    failed = [seed for seed, stats, _ in results if stats is None]
    if failed:
        print("failed seeds: " + " ".join(map(str, failed)))
        print("reproduce one with: python -m controller.sim SEED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
