"""The knobs of one simulated run, drawn from its seed."""

from __future__ import annotations

import random

import attrs

TICK = 10  # time units per Raft tick; message delays are drawn in units


@attrs.frozen
class SimOptions:
    """Knobs of one run; `SimOptions.for_seed` draws them from the seed.

    Times are in ticks unless they say units. Scenarios beyond the random faults:
    `laggard` cuts one voter off for most of the fault phase while the others commit and
    snapshot, so it comes back far behind (it needs a snapshot) and campaigns;
    `slow_leader_disk_ticks` makes every fsync of the node that leads take that long (its
    followers' disks stay fast), stalling its loop as a blocked fsync stalls the real node;
    `skewed_node`/`skew` make one node's clock tick twice as fast or half as fast.
    """

    voters: int = 3
    observers: int = 0
    fault_ticks: int = 600
    heal_ticks: int = 200
    catch_up_ticks: int = 1500
    steady_ticks: int = 60
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
    laggard: bool = False
    slow_leader_disk_ticks: int = 0
    skewed_node: int = 0  # 0: every clock ticks at the same rate
    skew: str = "fast"  # "fast" (2 ticks per tick) or "slow" (1 tick per 2)

    @classmethod
    def for_seed(cls, seed: int) -> SimOptions:
        r = random.Random(f"options-{seed}")
        voters = r.choice((1, 3, 3, 3, 5, 5))
        observers = r.choice((0, 0, 1))
        opts = cls(
            voters=voters,
            observers=observers,
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
            laggard=voters > 1 and r.random() < 0.15,
            slow_leader_disk_ticks=r.choice((0, 0, 0, 0, 0, 2, 3, 6)),
            skewed_node=r.choice((0, 0, 0, 0, r.randint(1, voters + observers))),
            skew=r.choice(("fast", "slow")),
        )
        if opts.slow_leader_disk_ticks:
            # A fast clock on a leader stalled by its disk would exceed its own election
            # timeout while stalled: an overloaded machine, not a liveness question.
            opts = attrs.evolve(opts, skewed_node=0)
        return opts
