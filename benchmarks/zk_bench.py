"""Side by side: our 3-controller quorum vs a 3-node Apache ZooKeeper 3.8 ensemble.

    python -m benchmarks.zk_bench [--rows idle,lone,kazoo,throughput,mix,failover,expiry]
                                  [--seconds 6] [--lone-seconds 5] [--connections 16]
                                  [--inflight 32] [--only ours|zookeeper]

Both run on this machine, one after the other, with fsync on (ZooKeeper's default
forceSync=yes; our default fsync=always), and are driven by the *same* clients: the
hand-encoded jute of `zk_load.py` (pipelined) and `zk_lone.py` (one request in flight), and
kazoo. Rows (`--rows` selects; default all):

- idle: CPU of the three server processes together with no client, over `--idle-seconds`
  after `--idle-settle` seconds, in % of one core (`/proc/<pid>/stat`);
- lone: one connection, one request in flight: setData and create of 100 bytes, and
  getData, on a follower and again on the leader (found with `srvr` on both systems);
- kazoo: the same through kazoo's synchronous `set()` / `create()`, on a follower;
- throughput: create, setData and getData pipelined (`--connections` x `--inflight`,
  spread over the three servers), 100-byte values;
- mix: 90 % getData / 10 % setData on the same keys, pipelined likewise;
- failover: leader-kill window (`zk_failover.py`; `--trials`, median and max);
- expiry: ephemeral-expiry delay of a dead session with a 4,000 ms timeout (3 trials).

Then a table of ours / ZooKeeper ratios with the targets of issue #8 and whether each is met.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

import trio

from benchmarks.zk_ensemble import zookeeper_available
from benchmarks.zk_failover import expiry_delays, failover_windows
from benchmarks.zk_load import LoadResult, run_load
from benchmarks.zk_lone import cpu_seconds, idle_cpu, lone_kazoo, lone_raw
from benchmarks.zk_systems import System, roles, start

ROWS = ("idle", "lone", "kazoo", "throughput", "mix", "failover", "expiry")
LONE_OPS = ("set", "create", "get")
OP_LABEL = {"set": "setData", "create": "create", "get": "getData", "mix": "90/10 mix"}


def _show(name: str, label: str, result: LoadResult) -> None:
    p50, p99 = result.percentile(0.5), result.percentile(0.99)
    print(
        f"  {name} {label:<28}{result.rate:>9,.0f} ops/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms"
        f"  errors {result.errors}"
        + (f" (closed connections: {result.broken})" if result.broken else ""),
        flush=True,
    )


def _lone_rows(system: System, rows: set[str], args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    leader, follower = roles(system)
    print(f"  {system.name}: leader is server {leader}, lone clients on follower {follower}")
    places = {"follower": follower, "leader": leader}
    for server in (follower, leader):  # warm up both paths (ZooKeeper's JIT above all)
        lone_raw(*system.address(server), "set", seconds=args.lone_warmup, warmup=0.0)
    plan: list[tuple[str, str, str]] = []
    if "lone" in rows:
        plan += [("lone", op, where) for where in places for op in LONE_OPS]
    if "kazoo" in rows:
        plan += [("kazoo", op, "follower") for op in ("set", "create")]
    for kind, op, where in plan:
        host, port = system.address(places[where])
        run = lone_raw if kind == "lone" else lone_kazoo
        cpu_before = sum(cpu_seconds(pid) for pid in system.pids())
        result = run(host, port, op, seconds=args.lone_seconds, warmup=1.0)
        cpu = sum(cpu_seconds(pid) for pid in system.pids()) - cpu_before
        figures[f"{kind}-{op}-{where}"] = result
        _show(system.name, f"{kind} {OP_LABEL[op]} on {where}", result)
        if result.requests:
            # CPU of the three servers together per request: what a lone write costs.
            figures[f"{kind}-{op}-{where}-cpu"] = cpu * 1000 / result.requests
            print(f"    servers' CPU: {cpu * 1000 / result.requests:.3f} ms per request")
    if roles(system)[0] != leader:
        print(f"  {system.name}: WARNING the leader changed during the lone-client rows")
    return figures


def _failed(name: str, what: str, exc: Exception) -> None:
    leaves: list[BaseException] = [exc]
    while any(isinstance(e, BaseExceptionGroup) for e in leaves):
        leaves = [
            x for e in leaves for x in (e.exceptions if isinstance(e, BaseExceptionGroup) else [e])
        ]
    detail = "; ".join(sorted({f"{type(e).__name__}: {e}" for e in leaves}))
    print(f"  {name}: {what} failed: {detail}", flush=True)


def _pipelined(system: System, op: str, args: argparse.Namespace) -> LoadResult:
    return trio.run(
        lambda: run_load(
            system.connect_string,
            op,
            connections=args.connections,
            inflight=args.inflight,
            seconds=args.seconds,
            warmup=1.0,
        )
    )


def measure(name: str, rows: set[str], args: argparse.Namespace) -> dict[str, Any]:
    """Every selected row; a row that fails is reported and the others still run."""
    figures: dict[str, Any] = {}
    try:
        with start(name) as system:
            if "idle" in rows:
                trio.run(trio.sleep, args.idle_settle)
                total, per = idle_cpu(system.pids(), args.idle_seconds)
                figures["idle"] = total
                print(
                    f"  {name} idle: {total:.1f} % of one core "
                    f"({' + '.join(f'{p:.1f}' for p in per)})",
                    flush=True,
                )
            if rows & {"lone", "kazoo"}:
                try:
                    figures.update(_lone_rows(system, rows, args))
                except Exception as exc:
                    _failed(name, "lone-client rows", exc)
            loads = [op for op in ("create", "set", "get") if "throughput" in rows]
            for op in loads + (["mix"] if "mix" in rows else []):
                try:
                    figures[op] = _pipelined(system, op, args)
                    _show(name, f"pipelined {OP_LABEL[op]}", figures[op])
                except Exception as exc:
                    _failed(name, f"pipelined {OP_LABEL[op]}", exc)
            if "failover" in rows:
                figures["failover"] = failover_windows(system, args.trials)
            if "expiry" in rows:
                figures["expiry"] = expiry_delays(system, 3)
    except Exception as exc:  # report and go on with the other system
        _failed(name, "the run", exc)
        figures["error"] = str(exc)
    return figures


Getter = Callable[[dict[str, Any]], float | None]
Check = Callable[[float, float | None], bool | None] | None
"""(ours, ratio or None) -> target met (None: cannot tell); None: no target."""


def _rate(key: str) -> Getter:
    return lambda f: f[key].rate if key in f else None


def _figure(key: str) -> Getter:
    return lambda f: f.get(key)


def _p99(key: str) -> Getter:
    return lambda f: f[key].percentile(0.99) if key in f else None


def _at_least(x: float) -> Check:
    return lambda _ours, ratio: None if ratio is None else ratio >= x


def _table_rows() -> list[tuple[str, Getter, str, Check]]:
    rows: list[tuple[str, Getter, str, Check]] = [
        ("idle CPU % (3 servers)", lambda f: f.get("idle"), "<= 3 %", lambda o, _r: o <= 3.0)
    ]
    for where in ("follower", "leader"):
        for op in ("set", "create"):
            key = f"lone-{op}-{where}"
            rows.append(
                (f"lone {OP_LABEL[op]} {where} ops/s", _rate(key), ">= 1.5x", _at_least(1.5))
            )
            rows.append(
                (
                    f"lone {OP_LABEL[op]} {where} p99 ms",
                    _p99(key),
                    "<= 2 ms",
                    lambda o, _r: o <= 2.0,
                )
            )
        key = f"lone-get-{where}"
        rows.append((f"lone getData {where} ops/s", _rate(key), ">= 1.0x", _at_least(1.0)))
        rows.append(
            (
                f"lone setData {where} CPU ms/op",
                _figure(f"lone-set-{where}-cpu"),
                "lower",
                None,
            )
        )
    for op in ("set", "create"):
        key = f"kazoo-{op}-follower"
        rows.append((f"kazoo {OP_LABEL[op]} follower ops/s", _rate(key), ">= 1.5x", _at_least(1.5)))
        rows.append((f"kazoo {OP_LABEL[op]} follower p99 ms", _p99(key), "lower", None))
    rows += [
        ("pipelined create ops/s", _rate("create"), ">= 1.5x", _at_least(1.5)),
        ("pipelined setData ops/s", _rate("set"), ">= 1.0x", _at_least(1.0)),
        ("pipelined getData ops/s", _rate("get"), ">= 1.0x", _at_least(1.0)),
        ("pipelined setData p99 ms", _p99("set"), "lower", None),
        ("90/10 mix ops/s", _rate("mix"), ">= 2.0x", _at_least(2.0)),
        ("90/10 mix p99 ms", _p99("mix"), "lower", None),
        (
            "failover median s",
            lambda f: statistics.median(f["failover"]) if f.get("failover") else None,
            "<= 1.0x",
            lambda _o, ratio: None if ratio is None else ratio <= 1.0,
        ),
        (
            "failover max s",
            lambda f: max(f["failover"]) if f.get("failover") else None,
            "lower",
            None,
        ),
        (
            "expiry median s",
            lambda f: statistics.median(f["expiry"]) if f.get("expiry") else None,
            "lower",
            None,
        ),
    ]
    return rows


def _number(value: float | None) -> str:
    return f"{value:,.2f}" if value is not None and value == value else "n/a"


def print_table(ours: dict[str, Any], zk: dict[str, Any]) -> None:
    print("\n== ours / ZooKeeper (same run, same machine)")
    print(f"{'figure':<30}{'ours':>11}{'zookeeper':>11}{'ratio':>9}  {'target':<9} met")
    for label, get, target, check in _table_rows():
        a, b = get(ours), get(zk)
        if a is None and b is None:
            continue
        ratio = a / b if a is not None and b and a == a and b == b else None
        verdict = check(a, ratio) if check is not None and a is not None and a == a else None
        met = "" if verdict is None else "yes" if verdict else "NO"
        shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
        print(f"{label:<30}{_number(a):>11}{_number(b):>11}{shown:>9}  {target:<9} {met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {ROWS}")
    parser.add_argument("--seconds", type=float, default=6.0, help="per pipelined workload")
    parser.add_argument("--lone-seconds", type=float, default=5.0, help="per lone-client row")
    parser.add_argument("--lone-warmup", type=float, default=2.0, help="unmeasured, per path")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--idle-settle", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--only", choices=["ours", "zookeeper"])
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-expiry", action="store_true")
    args = parser.parse_args()
    rows = {r.strip() for r in args.rows.split(",") if r.strip()}
    if unknown := rows - set(ROWS):
        parser.error(f"unknown rows {sorted(unknown)}; choose from {ROWS}")
    rows -= {"failover"} if args.skip_failover else set()
    rows -= {"expiry"} if args.skip_expiry else set()
    names = [args.only] if args.only else ["ours", "zookeeper"]
    if "zookeeper" in names and not zookeeper_available():
        print("ZooKeeper (Debian package) is not installed: measuring ours only")
        names = ["ours"]
    print(
        f"rows {','.join(r for r in ROWS if r in rows)}; pipelined: {args.connections} "
        f"connections x {args.inflight} in flight, {args.seconds:g} s; lone: "
        f"{args.lone_seconds:g} s; 100-byte values; fsync on"
    )
    results = {}
    for name in names:
        print(f"== {name}", flush=True)
        results[name] = measure(name, rows, args)
    if len(results) == 2:
        print_table(results["ours"], results["zookeeper"])


if __name__ == "__main__":
    main()
