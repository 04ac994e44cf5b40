"""Side by side: our 3-controller quorum vs a 3-node Apache ZooKeeper 3.8 ensemble.

    python -m benchmarks.zk_bench [--seconds 6] [--connections 16] [--inflight 32]
                                  [--only ours|zookeeper] [--skip-failover] [--skip-expiry]

Both run on this machine, one after the other, with fsync on (ZooKeeper's default
forceSync=yes; our default fsync=always), and are driven by the *same* pipelined
ZooKeeper-protocol load generator (`benchmarks/zk_load.py`, hand-encoded jute), connections
spread over the three servers. Printed for each system:

1. create, setData and getData throughput of 100-byte values, with p50/p99 latency;
2. leader-kill window: writers (one request in flight) on the two non-leader servers keep
   their sessions across reconnects; the leader is SIGKILLed; the window is the time until
   the first write *sent after the kill* succeeds (5 trials: median and max);
3. ephemeral-expiry delay: a session with a 4,000 ms timeout creates an ephemeral node and
   its connection dies without closing the session; the delay is the time until another
   client sees the node gone (3 trials, median).

Then a table of ours/ZooKeeper ratios. Targets: writes >= 1.0x, reads >= 1.0x, failover
window <= ZooKeeper's.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import trio

from benchmarks.zk_ensemble import ZooKeeperEnsemble, zookeeper_available
from benchmarks.zk_load import (
    OP_CREATE,
    OP_SET_DATA,
    LoadResult,
    ZkConnection,
    encode_request,
    parse_servers,
    run_load,
)
from controller.localquorum import LocalQuorum

OP_EXISTS = 3
OP_SYNC = 9


def _path_request(xid: int, op: int, path: bytes) -> bytes:
    """exists (path, watch=false) or sync (path)."""
    body = struct.pack(">ii", xid, op) + struct.pack(">i", len(path)) + path
    if op == OP_EXISTS:
        body += b"\0"
    return struct.pack(">i", len(body)) + body


class System(Protocol):
    """What the benchmark needs from either system."""

    name: str
    connect_string: str

    def leader(self) -> int: ...
    def kill(self, server: int) -> None: ...
    def restart(self, server: int) -> None: ...
    def address(self, server: int) -> tuple[str, int]: ...
    def servers(self) -> list[int]: ...


class Ours:
    name = "ours"

    def __init__(self, quorum: LocalQuorum) -> None:
        self.q = quorum
        self.connect_string = quorum.connect_string

    def leader(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses = [self._status(i) for i in self.q.ids if self.q.alive(i)]
            leaders = [s for s in statuses if s and s["role"] == "leader"]
            if leaders:
                best = max(leaders, key=lambda s: s["term"])
                # Only a leader every live member follows (no stale one about to step down).
                if all(s and s["leader_id"] == best["node_id"] for s in statuses):
                    node: int = best["node_id"]
                    return node
            time.sleep(0.05)
        raise RuntimeError("no stable leader")

    def _status(self, node: int) -> dict[str, Any] | None:
        from controller.node.admin_client import AdminError, query_status

        try:
            status: dict[str, Any] = trio.run(query_status, self.q.client_address(node), 1.0)
        except AdminError:
            return None
        return status

    def kill(self, server: int) -> None:
        self.q.kill(server)

    def restart(self, server: int) -> None:
        self.q.start_node(server)
        # The next trial needs all three members: wait until this one has caught up.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            mine = self._status(server)
            leader = self._status(self.leader())
            if mine and leader and mine["applied_index"] >= leader["commit_index"]:
                return
            time.sleep(0.1)

    def address(self, server: int) -> tuple[str, int]:
        a = self.q.client_address(server)
        return a.host, a.port

    def servers(self) -> list[int]:
        return list(self.q.ids)


class Theirs:
    name = "zookeeper"

    def __init__(self, ensemble: ZooKeeperEnsemble) -> None:
        self.e = ensemble
        self.connect_string = ensemble.connect_string

    def leader(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            leader = self.e.leader()
            if leader is not None:
                return leader
            time.sleep(0.05)
        raise RuntimeError("ZooKeeper has no leader")

    def kill(self, server: int) -> None:
        self.e.kill(server)

    def restart(self, server: int) -> None:
        self.e.start_server(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.e.mode(server) not in ("follower", "leader"):
            time.sleep(0.1)
        time.sleep(1.0)  # let it finish syncing with the leader

    def address(self, server: int) -> tuple[str, int]:
        host, port = parse_servers(self.connect_string)[server - 1]
        return host, port

    def servers(self) -> list[int]:
        return list(range(1, len(parse_servers(self.connect_string)) + 1))


@contextlib.contextmanager
def start(name: str) -> Iterator[System]:
    if name == "ours":
        with tempfile.TemporaryDirectory(prefix="kraft-zkbench-") as tmp:
            q = LocalQuorum(Path(tmp), fsync=True, log_level="INFO")
            with q:
                q.wait_for_leader()
                try:
                    yield Ours(q)
                except Exception:
                    for i in q.ids:  # post-mortem: what the controllers said
                        lines = (Path(tmp) / f"node-{i}.log").read_text().splitlines()
                        print(f"--- controller {i} (last lines)")
                        print("\n".join(line for line in lines[-15:]))
                    raise
    else:
        e = ZooKeeperEnsemble(3)
        try:
            e.start()
            e.wait_ready()
            yield Theirs(e)
        finally:
            e.stop()


# ---------------------------------------------------------------------- failover


async def _writer(
    system: System, server: int, path: bytes, log: list[tuple[float, float]], stop: trio.Event
) -> None:
    """One request in flight; reconnect to the same server with the same session."""
    host, port = system.address(server)
    session: tuple[int, bytes] | None = None
    conn: ZkConnection | None = None
    xid = 0
    while not stop.is_set():
        try:
            if conn is None:
                with trio.fail_after(2):
                    conn = await ZkConnection.open(host, port, 10000, session)
                session = (conn.session_id, conn.password)
                if xid == 0:
                    xid = 1
                    await conn.call(xid, OP_CREATE, path, b"v")
            xid += 1
            sent = time.monotonic()
            with trio.fail_after(2):
                err = await conn.call(xid, OP_SET_DATA, path, b"x" * 100)
            if err == 0:
                log.append((sent, time.monotonic()))
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, Exception):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.stream.aclose()
            conn = None
            await trio.sleep(0.005)


def failover_windows(system: System, trials: int) -> list[float]:
    windows = []
    for trial in range(trials):
        leader = system.leader()
        others = [s for s in system.servers() if s != leader]
        log: list[tuple[float, float]] = []
        killed_at = 0.0

        async def main(leader: int, others: list[int], log: list[tuple[float, float]]) -> float:
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                for i, server in enumerate(others):
                    path = f"/failover-{leader}-{i}-{time.monotonic_ns()}".encode()
                    nursery.start_soon(_writer, system, server, path, log, stop)
                await trio.sleep(1.5)
                killed = time.monotonic()
                await trio.to_thread.run_sync(system.kill, leader)
                with trio.move_on_after(15):
                    while not any(sent > killed for sent, _ in log[-20:]):
                        await trio.sleep(0.002)
                stop.set()
                nursery.cancel_scope.cancel()
            return killed

        killed_at = trio.run(main, leader, others, log)
        after = [done for sent, done in log if sent > killed_at]
        window = (min(after) - killed_at) if after else float("inf")
        windows.append(window)
        print(f"  {system.name} trial {trial + 1}: killed server {leader}, "
              f"first write after {window * 1000:.0f} ms")  # fmt: skip
        system.restart(leader)
    return windows


# ---------------------------------------------------------------------- expiry


async def _open_retrying(host: str, port: int, timeout_ms: int = 10000) -> ZkConnection:
    for _ in range(50):
        try:
            with trio.fail_after(5):
                return await ZkConnection.open(host, port, timeout_ms)
        except (OSError, trio.BrokenResourceError, trio.TooSlowError):
            await trio.sleep(0.1)
    raise RuntimeError(f"cannot open a session on {host}:{port}")


def expiry_delays(system: System, trials: int) -> list[float]:
    delays = []
    for trial in range(trials):

        async def main(trial: int) -> float:
            host, port = system.address(system.servers()[trial % 3])
            path = f"/expiry-{trial}-{time.monotonic_ns()}".encode()
            victim = await _open_retrying(host, port, 4000)
            # An ephemeral create (flags 1), hand-encoded like the generator's requests.
            frame = bytearray(encode_request(1, OP_CREATE, path, b""))
            frame[-4:] = (1).to_bytes(4, "big")
            await victim.stream.send_all(bytes(frame))
            _, _, err = await victim.read_reply()
            assert err == 0, err
            watcher = await _open_retrying(*system.address(system.servers()[(trial + 1) % 3]))
            died = time.monotonic()
            await victim.stream.aclose()  # no closeSession: only expiry removes the node
            xid = 1
            with trio.fail_after(60):
                while True:
                    xid += 1
                    await watcher.stream.send_all(_path_request(xid, OP_SYNC, path))
                    await watcher.read_reply()
                    xid += 1
                    await watcher.stream.send_all(_path_request(xid, OP_EXISTS, path))
                    _, _, err = await watcher.read_reply()
                    if err != 0:
                        gone = time.monotonic()
                        break
                    await trio.sleep(0.02)
            await watcher.aclose()
            return gone - died

        delay = trio.run(main, trial)
        print(f"  {system.name} expiry trial {trial + 1}: node gone after {delay:.2f} s")
        delays.append(delay)
    return delays


# ---------------------------------------------------------------------- main


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    try:
        with start(name) as system:
            for op in ("create", "set", "get"):
                result: LoadResult = trio.run(
                    lambda op=op: run_load(
                        system.connect_string,
                        op,
                        connections=args.connections,
                        inflight=args.inflight,
                        seconds=args.seconds,
                        warmup=1.0,
                    )
                )
                figures[op] = result
                print(f"  {name} {op:>6}: {result.rate:>9,.0f} ops/s  "
                      f"p50 {result.percentile(0.5):6.2f} ms  p99 {result.percentile(0.99):7.2f} ms"
                      f"  errors {result.errors}")  # fmt: skip
            if not args.skip_failover:
                figures["failover"] = failover_windows(system, args.trials)
            if not args.skip_expiry:
                figures["expiry"] = expiry_delays(system, 3)
    except Exception as exc:  # report and go on with the other system
        leaves = [exc]
        while any(isinstance(e, BaseExceptionGroup) for e in leaves):
            leaves = [
                x
                for e in leaves
                for x in (e.exceptions if isinstance(e, BaseExceptionGroup) else [e])
            ]
        detail = "; ".join(sorted({f"{type(e).__name__}: {e}" for e in leaves}))
        print(f"  {name}: failed: {detail}")
        figures["error"] = str(exc)
    return figures


def _ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs or ours != ours or theirs != theirs:
        return "n/a"
    return f"{ours / theirs:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--only", choices=["ours", "zookeeper"])
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-expiry", action="store_true")
    args = parser.parse_args()
    names = [args.only] if args.only else ["ours", "zookeeper"]
    if "zookeeper" in names and not zookeeper_available():
        print("ZooKeeper (Debian package) is not installed: measuring ours only")
        names = ["ours"]
    print(f"{args.connections} connections x {args.inflight} in flight, 100-byte values, "
          f"{args.seconds:.0f} s per workload, fsync on")  # fmt: skip
    results = {}
    for name in names:
        print(f"== {name}")
        results[name] = measure(name, args)
    if len(results) < 2:
        return
    ours, zk = results["ours"], results["zookeeper"]
    print("\n== ours / ZooKeeper (same run, same machine)")
    rows: list[tuple[str, Callable[[dict[str, Any]], float | None], str]] = [
        ("create ops/s", lambda f: f["create"].rate if "create" in f else None, ">= 1.0x"),
        ("setData ops/s", lambda f: f["set"].rate if "set" in f else None, ">= 1.0x"),
        ("getData ops/s", lambda f: f["get"].rate if "get" in f else None, ">= 1.0x"),
        ("setData p99 ms", lambda f: f["set"].percentile(0.99) if "set" in f else None, "lower"),
        (
            "failover median s",
            lambda f: statistics.median(f["failover"]) if f.get("failover") else None,
            "<= 1.0x",
        ),
        ("failover max s", lambda f: max(f["failover"]) if f.get("failover") else None, "lower"),
        (
            "expiry median s",
            lambda f: statistics.median(f["expiry"]) if f.get("expiry") else None,
            "lower",
        ),
    ]
    print(f"{'figure':<20}{'ours':>12}{'zookeeper':>12}{'ratio':>9}  target")
    for label, get, target in rows:
        a, b = get(ours), get(zk)
        fa = f"{a:,.2f}" if a is not None else "n/a"
        fb = f"{b:,.2f}" if b is not None else "n/a"
        print(f"{label:<20}{fa:>12}{fb:>12}{_ratio(a, b):>9}  {target}")


if __name__ == "__main__":
    main()
