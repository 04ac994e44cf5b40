"""Five philosophers share five chopsticks; each chopstick is a `Lock` in the quorum.

Run against the local quorum (`kraft quorum start`):

    .venv/bin/python examples/dining_philosophers.py                 # 3 meals each, then exit
    .venv/bin/python examples/dining_philosophers.py --strategy waiter --meals 5
    .venv/bin/python examples/dining_philosophers.py --forever       # until Ctrl-C

Each philosopher has its own client (its own session). No deadlock: with `ordering` (the
default) every philosopher picks up the lower-numbered chopstick first, so no cycle of waits
can form; with `waiter` a Semaphore of 4 leases lets at most four sit down at once. No
starvation: the Lock serves waiters in FIFO order, so a hungry philosopher is served after
at most the ones already queued at each chopstick.

Checked as it runs: never two philosophers holding one chopstick, fencing tokens of each
chopstick strictly increasing, both locks still held while eating, and every philosopher
eats. Exit 0 only if all held.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from contextlib import AsyncExitStack, nullcontext
from typing import Any

import trio
from example_cli import OneLineParser, bootstrap, non_negative, positive, run_main, znode

from controller.cli_common import DEFAULT_BOOTSTRAP
from controller.client import ZkClient, open_client
from controller.client.reach import probe
from controller.client.recipes import Lock, Semaphore
from controller.node.config import parse_bootstrap

N = 5


class Table:
    """What the philosophers do, checked against the invariants."""

    def __init__(self) -> None:
        self.holder: list[int | None] = [None] * N
        self.last_token = [0] * N
        self.meals = [0] * N
        self.longest_wait = [0.0] * N
        self.violations: list[str] = []
        self.start = trio.current_time()

    def now(self) -> float:
        return trio.current_time() - self.start

    def take(self, chopstick: int, who: int, token: int) -> None:
        if self.holder[chopstick] is not None:
            self.violations.append(
                f"philosopher {who} took chopstick {chopstick} held by {self.holder[chopstick]}"
            )
        if token <= self.last_token[chopstick]:
            self.violations.append(f"chopstick {chopstick}: fencing token went backwards")
        self.holder[chopstick] = who
        self.last_token[chopstick] = token

    def put(self, chopstick: int, who: int) -> None:
        if self.holder[chopstick] != who:
            self.violations.append(f"philosopher {who} put down chopstick {chopstick} not held")
        self.holder[chopstick] = None


async def philosopher(
    i: int, zk: ZkClient, root: str, table: Table, args: argparse.Namespace
) -> None:
    left, right = i, (i + 1) % N
    if args.strategy == "ordering":
        first, second = min(left, right), max(left, right)
    else:
        first, second = left, right
    locks = {c: Lock(zk, f"{root}/chopstick-{c}", f"philosopher-{i}") for c in (first, second)}
    waiter = (
        Semaphore(zk, f"{root}/waiter", f"philosopher-{i}", max_leases=N - 1)
        if args.strategy == "waiter"
        else None
    )
    meal = 0
    while args.forever or meal < args.meals:
        await trio.sleep(random.uniform(0, args.think))  # think
        hungry_since = trio.current_time()
        seat: Any = waiter.hold() if waiter is not None else nullcontext()
        async with seat, locks[first] as a:
            table.take(first, i, a.token)
            async with locks[second] as b:
                table.take(second, i, b.token)
                meal += 1
                table.meals[i] += 1
                waited = trio.current_time() - hungry_since
                table.longest_wait[i] = max(table.longest_wait[i], waited)
                print(
                    f"{table.now():6.2f}s  philosopher {i} eats with chopsticks {first} and "
                    f"{second} (meal {meal}, waited {waited:.2f}s)",
                    flush=True,
                )
                with a.guard(), b.guard():  # stop eating if a chopstick may be lost
                    await trio.sleep(args.eat)
                if not (a.held and b.held):
                    table.violations.append(f"philosopher {i} lost a chopstick while eating")
                table.put(second, i)
            table.put(first, i)


async def main(args: argparse.Namespace) -> int:
    await probe(parse_bootstrap(args.bootstrap_server))  # fail fast if nothing answers
    root = f"{args.root}/{uuid.uuid4().hex[:8]}"
    table = Table()
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(open_client(args.bootstrap_server, 5000, 10.0))
            for _ in range(N)
        ]
        print(f"{N} philosophers at {root} ({args.strategy}), {args.meals} meals each")
        try:
            async with trio.open_nursery() as nursery:
                for i, zk in enumerate(clients):
                    nursery.start_soon(philosopher, i, zk, root, table, args)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await clients[0].delete(root, recursive=True)
    for i in range(N):
        print(f"philosopher {i}: {table.meals[i]} meals, longest wait {table.longest_wait[i]:.2f}s")
    if not args.forever and any(m < args.meals for m in table.meals):
        table.violations.append("a philosopher did not get all meals")
    for violation in table.violations:
        print(f"VIOLATION: {violation}")
    print("OK: no chopstick shared, every philosopher ate" if not table.violations else "FAILED")
    return 1 if table.violations else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-server", "-b", default=DEFAULT_BOOTSTRAP, type=bootstrap)
    parser.add_argument("--meals", type=positive, default=3, help="meals per philosopher (3)")
    parser.add_argument("--strategy", choices=("ordering", "waiter"), default="ordering")
    parser.add_argument("--think", type=non_negative, default=0.05, help="max seconds thinking")
    parser.add_argument("--eat", type=non_negative, default=0.05, help="seconds eating")
    parser.add_argument("--root", default="/examples/dining", type=znode, help="parent znode")
    parser.add_argument("--forever", action="store_true", help="keep dining until Ctrl-C")
    return parser.parse_args(argv)


def run() -> int:
    return run_main(main, parse_args())


if __name__ == "__main__":
    sys.exit(run())
