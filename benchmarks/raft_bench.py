"""Controller quorum benchmark: commit throughput/latency and failover window.

    python -m benchmarks.raft_bench [--seconds 10] [--connections 8] [--window 512]
                                    [--trials 5] [--skip-failover]

Starts a 3-controller quorum of real processes on loopback (fsync on, then off), drives the
leader with pipelined 100-byte proposals over the admin protocol, and prints committed
entries/s, p50/p99 commit latency and how many elections happened during the run. Then it
SIGKILLs the leader under load, five times, and prints the window until the next commit.
Targets (issue 2): >= 30,000 entries/s with fsync on; failover median <= 0.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from controller.localquorum import LocalQuorum
from controller.node.admin import MAGIC, AdminDecoder, AdminRequest, AdminResponse, encode
from controller.node.config import Address

VALUE = b"v" * 100


class Load:
    """Pipelined proposers; records ack times and latencies."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.acks = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.ack_times: list[tuple[float, float]] = []  # (sent, acknowledged)
        self.recording = False
        self.leader: Address | None = None

    async def connection(self, addresses: list[Address]) -> None:
        """Keep `window` proposals outstanding against whoever is leader."""
        while True:
            target = self.leader or addresses[0]
            try:
                await self._run(target)
            except* (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            # Leader unknown or gone: try the others.
            self.leader = None
            for addr in addresses:
                if addr != target:
                    self.leader = addr
                    break
            await trio.sleep(0.005)

    async def _run(self, address: Address) -> None:
        stream = await trio.open_tcp_stream(address.host, address.port)
        sent: dict[int, float] = {}
        next_id = 0
        room = trio.Semaphore(self.window)
        async with stream, trio.open_nursery() as nursery:
            await stream.send_all(MAGIC)

            async def reader() -> None:
                decoder = AdminDecoder(AdminResponse)
                async for data in stream:
                    decoder.feed(bytes(data))
                    now = time.perf_counter()
                    while (resp := decoder.next()) is not None:
                        start = sent.pop(resp.id, None)
                        room.release()
                        if resp.ok:
                            if self.recording and start is not None:
                                self.acks += 1
                                self.latencies.append(now - start)
                            if start is not None:
                                self.ack_times.append((start, now))
                        else:
                            self.errors += 1
                            if resp.leader:
                                self.leader = Address.parse(resp.leader)
                            nursery.cancel_scope.cancel()
                            return
                nursery.cancel_scope.cancel()

            nursery.start_soon(reader)
            while True:
                await room.acquire()
                next_id += 1
                sent[next_id] = time.perf_counter()
                frames = [encode(AdminRequest(next_id, "propose", value=VALUE))]
                # Send whatever window is free in one write.
                while True:
                    try:
                        room.acquire_nowait()
                    except trio.WouldBlock:
                        break
                    next_id += 1
                    sent[next_id] = time.perf_counter()
                    frames.append(encode(AdminRequest(next_id, "propose", value=VALUE)))
                await stream.send_all(b"".join(frames))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def throughput(fsync: bool, seconds: float, connections: int, window: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kraft-bench-") as tmp:
        quorum = LocalQuorum(Path(tmp), fsync=fsync)
        with quorum:
            status = quorum.wait_for_leader()
            leader = Address.parse(status["leader_client_address"])
            term_before = status["term"]
            load = Load(window)
            load.leader = leader

            async def main() -> None:
                async with trio.open_nursery() as nursery:
                    for _ in range(connections):
                        nursery.start_soon(load.connection, quorum.addresses)
                    await trio.sleep(1.0)  # warm-up
                    load.recording = True
                    await trio.sleep(seconds)
                    load.recording = False
                    nursery.cancel_scope.cancel()

            trio.run(main)
            after = quorum.wait_for_leader()
        return {
            "fsync": fsync,
            "rate": load.acks / seconds,
            "p50_ms": pct(load.latencies, 0.5) * 1e3,
            "p99_ms": pct(load.latencies, 0.99) * 1e3,
            "errors": load.errors,
            "elections": after["term"] - term_before,
            "leader_changed": after["node_id"] != status["node_id"],
            "fsyncs": after["fsyncs"],
        }


def wait_caught_up(quorum: LocalQuorum, node: int, timeout: float = 60.0) -> None:
    """The next trial needs all three members: wait until the restarted one caught up."""
    from controller.node.admin_client import AdminError, query_status

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            mine = trio.run(query_status, quorum.client_address(node), 1.0)
            leader = quorum.wait_for_leader()
        except AdminError:
            time.sleep(0.1)
            continue
        if mine["applied_index"] >= leader["commit_index"]:
            return
        time.sleep(0.1)


def failover(trials: int, connections: int, window: int, keep: str | None = None) -> list[float]:
    windows: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kraft-failover-") as tmp_dir:
        tmp = keep or tmp_dir
        quorum = LocalQuorum(Path(tmp), fsync=True)
        with quorum:
            for trial in range(trials):
                status = quorum.wait_for_leader()
                leader_id = status["node_id"]
                load = Load(window)
                load.leader = Address.parse(status["leader_client_address"])
                killed_at = 0.0

                async def main(load: Load, leader_id: int) -> None:
                    nonlocal killed_at
                    async with trio.open_nursery() as nursery:
                        for _ in range(connections):
                            nursery.start_soon(load.connection, quorum.addresses)
                        await trio.sleep(1.0)
                        killed_at = time.perf_counter()
                        await trio.to_thread.run_sync(quorum.kill, leader_id)
                        deadline = trio.current_time() + 10
                        while trio.current_time() < deadline:
                            if any(sent > killed_at for sent, _ in load.ack_times[-50:]):
                                break
                            await trio.sleep(0.002)
                        nursery.cancel_scope.cancel()

                trio.run(main, load, leader_id)
                # Only proposals sent after the kill count: acks of earlier ones may still
                # trickle in from entries the old leader committed just before dying.
                after = [acked for sent, acked in load.ack_times if sent > killed_at]
                gap = (min(after) - killed_at) if after else float("inf")
                windows.append(gap)
                print(f"  trial {trial + 1}: killed node {leader_id}, next commit after "
                      f"{gap * 1e3:.0f} ms")  # fmt: skip
                quorum.start_node(leader_id)
                wait_caught_up(quorum, leader_id)
    return windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-nofsync", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--keep-dir", help="data directory to keep (for post-mortems)")
    args = parser.parse_args()
    print(f"3-controller loopback quorum, 100-byte entries, {args.connections} connections x "
          f"{args.window} outstanding")  # fmt: skip
    modes = [] if args.skip_throughput else [True] if args.skip_nofsync else [True, False]
    for fsync in modes:
        r = throughput(fsync, args.seconds, args.connections, args.window)
        print(
            f"fsync {'on ' if fsync else 'off'}: {r['rate']:>9,.0f} entries/s  "
            f"p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  "
            f"elections during run: {r['elections']}  errors: {r['errors']}  "
            f"leader fsyncs: {r['fsyncs']}  (target >= 30,000/s with fsync on: "
            f"{r['rate'] / 30000:.2f}x)"
        )
    if not args.skip_failover:
        print(f"failover: SIGKILL the leader under load, {args.trials} trials")
        w = failover(args.trials, min(args.connections, 4), 64, args.keep_dir)
        print(
            f"failover window: median {statistics.median(w) * 1e3:.0f} ms, "
            f"max {max(w) * 1e3:.0f} ms (target median <= 500 ms; ZooKeeper 3.8 here: 420 ms)"
        )


if __name__ == "__main__":
    main()
