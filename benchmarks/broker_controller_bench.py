"""Broker-controller scale benchmark: topic creation, broker failover, controller failover, RSS.

    python -m benchmarks.broker_controller_bench [--partitions 10000] [--per-topic 1000]
                                                 [--brokers 12] [--session-timeout-ms 4000]
                                                 [--timeout 600] [--keep-dir DIR]

Starts a 3-controller quorum of real processes on loopback (fsync on, as users run it), then
a simulated fleet of brokers in this one process: each is a session of our trio ZooKeeper
client that registers the ephemeral `/brokers/ids/<id>` (racks r0..r3) and follows
`/brokers/topics` with a persistent recursive watch, counting state notifications per
partition-state path. Then:

1. creation: topics of `--per-topic` partitions (RF 3, placed with `create_topic` over an
   image read with `read_image`) are written with `apply_ops` until `--partitions` exist; the
   figure is the time from the first write until every simulated broker was notified of every
   partition's state znode;
2. RSS of each controller process (VmRSS) once everything exists;
3. broker failover: one broker dies as under SIGKILL (its TCP connection closes, the session
   is not closed and it never reconnects); the figure is the time from the kill until every
   surviving broker was notified of a new state for every partition the dead broker led
   (and, separately, for every partition it was a replica of); target: session timeout + 0.5 s;
4. controller failover: the leader controller is SIGKILLed; the figure is the time until the
   new leader's broker controller is active with a bumped controller epoch and has finished
   its first reconcile (`last_activation_ms` > 0 in its status); target <= 2 s.

Figures only: no timed assertions. Bound the whole run with `--timeout`.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from controller.client import ZkClient
from controller.client.client import State, WatchedEvent
from controller.client.errors import (
    ConnectionLossError,
    NodeExistsError,
    OperationTimeoutError,
    ZkException,
)
from controller.localquorum import LocalQuorum
from controller.metadata import records as r
from controller.metadata.placement import create_topic
from controller.metadata_client import OpFailed, apply_ops, new_uuid, read_image
from controller.node.admin_client import AdminError, fetch_status
from controller.node.config import Address
from controller.zk.constants import EventType

RACKS = 4
GIB = 1 << 30


def rss_bytes(pid: int | None) -> int:
    """VmRSS of a process in bytes (0 if it is gone)."""
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class SimBroker:
    """A broker as the controller sees it: a session with a registration and a watch."""

    def __init__(self, broker_id: int, servers: list[Address], session_timeout_ms: int) -> None:
        self.id = broker_id
        self.rack = f"r{broker_id % RACKS}"
        self.client = ZkClient(servers, session_timeout_ms)
        self.scope = trio.CancelScope()
        self.created = 0  # state znodes created (notifications)
        self.changed = 0  # state data changes (notifications)
        self.events = 0
        # Failover tracking: state paths we wait for, and the time the last of them arrived.
        self.targets: set[str] = set()
        self.targets_done: float | None = None
        self.replica_targets: set[str] = set()
        self.replica_done: float | None = None
        self.create_target = 0
        self.create_done: float | None = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, register, watch; then keep the session until `kill()`."""
        with self.scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.client._run)
                with trio.fail_after(10):
                    await self.client._connected.wait()
                assert self.client.state == State.CONNECTED
                await self.client.add_persistent_watch(r.BROKER_TOPICS, self._on_event)
                await self._register()
                task_status.started()

    async def _register(self) -> None:
        registration = r.BrokerRegistration(
            host="127.0.0.1",
            port=9092 + self.id,
            endpoints=[f"PLAINTEXT://127.0.0.1:{9092 + self.id}"],
            rack=self.rack,
            timestamp=str(int(time.time() * 1000)),
            incarnation_id=new_uuid(),
        )
        try:
            await self.client.create(
                r.broker_path(self.id), r.encode(registration), ephemeral=True, makepath=True
            )
        except NodeExistsError:
            raise RuntimeError(f"broker {self.id} is already registered") from None

    def _on_event(self, ev: WatchedEvent) -> None:
        self.events += 1
        path = ev.path
        if not path.endswith("/state"):
            return
        if ev.type == EventType.NODE_CREATED:
            self.created += 1
            if self.created == self.create_target and self.create_done is None:
                self.create_done = time.perf_counter()
        elif ev.type == EventType.NODE_DATA_CHANGED:
            self.changed += 1
            if path in self.targets:
                self.targets.discard(path)
                if not self.targets:
                    self.targets_done = time.perf_counter()
            if path in self.replica_targets:
                self.replica_targets.discard(path)
                if not self.replica_targets:
                    self.replica_done = time.perf_counter()

    def kill(self) -> None:
        """Like SIGKILL: the connection closes, the session is left to expire."""
        self.scope.cancel()


async def leader_status(quorum: LocalQuorum, timeout: float = 3.0) -> dict[str, Any]:
    live = [quorum.client_address(i) for i in quorum.ids if quorum.alive(i)]
    return await fetch_status(live, timeout)


async def wait_active(
    quorum: LocalQuorum, min_epoch: int = 1, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll until a leader's broker controller is active at `min_epoch` or later and has
    finished its first reconcile; returns that status."""
    deadline = trio.current_time() + timeout
    while True:
        try:
            status = await leader_status(quorum, 2.0)
            bc = status.get("broker_controller") or {}
            if (
                status["role"] == "leader"
                and bc.get("active")
                and bc.get("controller_epoch", 0) >= min_epoch
                and bc.get("last_activation_ms", 0) > 0
            ):
                return status
        except AdminError:
            pass
        if trio.current_time() > deadline:
            raise TimeoutError("no active broker controller")
        await trio.sleep(0.02)


async def progress(quorum: LocalQuorum, brokers: list[SimBroker], start: float) -> None:
    """One line while waiting: what the brokers saw, what the leader reports."""
    created = [b.created for b in brokers]
    states = sorted({str(b.client.state) for b in brokers})
    try:
        status = await leader_status(quorum, 2.0)
        bc = status.get("broker_controller") or {}
        leader = (
            f"leader {status['node_id']} term {status['term']} active {bc.get('active')} "
            f"changes {bc.get('partition_changes')} last_batch_ms {bc.get('last_batch_ms')}"
        )
    except AdminError as exc:
        leader = f"status: {exc}"
    print(f"  ... {time.perf_counter() - start:.0f} s: states seen min {min(created):,} max "
          f"{max(created):,}; clients {states}; {leader}", flush=True)  # fmt: skip


class Profiler:
    """`py-spy record` of one controller process during a phase (with --profile-dir)."""

    def __init__(self, directory: str | None, phase: str, node: int, quorum: LocalQuorum) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        pid = quorum.pid(node)
        if directory is None or pid is None:
            return
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = Path(directory) / f"{phase}-controller{node}.txt"
        py_spy = Path(sys.executable).parent / "py-spy"
        self.proc = subprocess.Popen(
            [str(py_spy), "record", "--format", "raw", "-r", "200", "--nonblocking",
             "-o", str(self.path), "--pid", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)  # let it attach

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
            print(f"  profile written to {self.path}", flush=True)


async def scenario(quorum: LocalQuorum, args: argparse.Namespace, out: dict[str, Any]) -> None:
    servers = quorum.addresses
    status = await wait_active(quorum)
    print(f"quorum ready: leader controller {status['node_id']}, controller epoch "
          f"{status['broker_controller']['controller_epoch']}", flush=True)  # fmt: skip
    brokers = [SimBroker(i, servers, args.session_timeout_ms) for i in range(args.brokers)]
    topics = -(-args.partitions // args.per_topic)
    total = topics * args.per_topic
    out["partitions"] = total
    async with trio.open_nursery() as fleet:
        for b in brokers:
            b.create_target = total
            await fleet.start(b.run)
        out["rss_before"] = {i: rss_bytes(quorum.pid(i)) for i in quorum.ids}
        print(f"{len(brokers)} simulated brokers registered (session timeout "
              f"{args.session_timeout_ms} ms, racks r0..r{RACKS - 1})", flush=True)  # fmt: skip

        admin = ZkClient(servers, 30_000)
        async with trio.open_nursery() as admin_nursery:
            await admin_nursery.start(admin._run)
            with trio.fail_after(10):
                await admin._connected.wait()
            # Wait until the controller's image holds every broker.
            while True:
                image = await read_image(admin)
                if len(image.brokers) == len(brokers):
                    break
                await trio.sleep(0.05)

            # ---------------------------------------------------------------- creation
            rng = random.Random(42)
            assignments: dict[str, dict[int, tuple[int, ...]]] = {}
            results = []
            for t in range(topics):
                name = f"bench-{t:04d}"
                res = create_topic(image, name, args.per_topic, 3, {}, rng, new_uuid())
                assert isinstance(res.reply, dict)
                assignments[name] = res.reply
                results.append(res)
            print(f"creating {topics} topics x {args.per_topic} partitions = {total:,} "
                  "partitions (RF 3)", flush=True)  # fmt: skip
            term_before = status["term"]
            profiler = Profiler(args.profile_dir, "creation", status["node_id"], quorum)
            start = time.perf_counter()
            retries = 0
            for res in results:
                retried = False
                while True:
                    try:
                        await apply_ops(admin, res.ops)
                        break
                    except (ConnectionLossError, OperationTimeoutError):
                        # Outcome unknown (e.g. the leader changed): retry; an "exists"
                        # failure of the retry means the first attempt had applied.
                        retries += 1
                        retried = True
                        await trio.sleep(0.05)
                    except OpFailed as exc:
                        if retried and isinstance(exc.error, NodeExistsError):
                            break
                        raise
            written = time.perf_counter() - start
            next_report = time.perf_counter() + 10
            while any(b.create_done is None for b in brokers):
                await trio.sleep(0.01)
                if time.perf_counter() > next_report:
                    next_report += 10
                    await progress(quorum, brokers, start)
            first_all = min(b.create_done or 0 for b in brokers) - start
            creation = max(b.create_done or 0 for b in brokers) - start
            profiler.stop()
            out["assignments_written_s"] = written
            out["creation_first_broker_s"] = first_all
            out["creation_s"] = creation
            print(f"  assignments written in {written:.2f} s; first broker saw all states "
                  f"after {first_all:.2f} s, every broker after {creation:.2f} s",
                  flush=True)  # fmt: skip
            status = await leader_status(quorum)
            bc = status["broker_controller"]
            out["creation_elections"] = status["term"] - term_before
            print(f"  Raft elections during creation: {status['term'] - term_before}, "
                  f"admin writes retried after connection loss: {retries}", flush=True)  # fmt: skip
            print(f"  leader status: partitions {bc['partitions']:,}, offline "
                  f"{bc['offline_partitions']}, partition_changes {bc['partition_changes']}, "
                  f"last_batch_ms {bc['last_batch_ms']}", flush=True)  # fmt: skip
            await trio.sleep(1.0)  # let followers settle before measuring memory
            out["rss"] = {i: rss_bytes(quorum.pid(i)) for i in quorum.ids}
            out["leader_before"] = status["node_id"]
            rss = ", ".join(
                f"controller {i}{'*' if i == status['node_id'] else ''} {v / (1 << 20):,.0f} MiB"
                for i, v in out["rss"].items()
            )
            print(f"  RSS: {rss}", flush=True)

            # ---------------------------------------------------------------- broker failover
            victim = brokers[0]
            led = {
                r.state_path(name, p)
                for name, assignment in assignments.items()
                for p, replicas in assignment.items()
                if replicas[0] == victim.id
            }
            hosted = {
                r.state_path(name, p)
                for name, assignment in assignments.items()
                for p, replicas in assignment.items()
                if victim.id in replicas
            }
            survivors = brokers[1:]
            for b in survivors:
                b.targets = set(led)
                b.replica_targets = set(hosted)
            print(f"broker failover: killing broker {victim.id} (leads {len(led):,}, replica of "
                  f"{len(hosted):,} partitions; session timeout {args.session_timeout_ms} ms)",
                  flush=True)  # fmt: skip
            term_before = status["term"]
            profiler = Profiler(args.profile_dir, "broker-failover", status["node_id"], quorum)
            killed = time.perf_counter()
            victim.kill()
            with trio.fail_after(args.session_timeout_ms / 1000 + 120):
                while any(b.targets_done is None or b.replica_done is None for b in survivors):
                    await trio.sleep(0.005)
            out["broker_failover_leaders_s"] = max(b.targets_done or 0 for b in survivors) - killed
            out["broker_failover_all_s"] = max(b.replica_done or 0 for b in survivors) - killed
            profiler.stop()
            # Check: the dead broker leads nothing any more (a sample read back).
            sample = random.Random(1).sample(sorted(led), min(200, len(led)))
            still = 0
            for path in sample:
                data, _ = await admin.get(path)
                if r.decode(data, r.PartitionState).leader == victim.id:
                    still += 1
            status = await leader_status(quorum)
            bc = status["broker_controller"]
            print(f"  new leaders seen by all {len(survivors)} survivors after "
                  f"{out['broker_failover_leaders_s']:.2f} s, ISR shrinks of all its partitions "
                  f"after {out['broker_failover_all_s']:.2f} s; sampled {len(sample)} led "
                  f"partitions, {still} still led by it; offline {bc['offline_partitions']}, "
                  f"last_batch_ms {bc['last_batch_ms']}; Raft elections: "
                  f"{status['term'] - term_before}", flush=True)  # fmt: skip

            # ---------------------------------------------------------------- controller failover
            if not args.skip_controller_failover:
                old_leader = status["node_id"]
                old_epoch = bc["controller_epoch"]
                print(f"controller failover: SIGKILL leader controller {old_leader} "
                      f"(controller epoch {old_epoch})", flush=True)  # fmt: skip
                killed = time.perf_counter()
                await trio.to_thread.run_sync(quorum.kill, old_leader)
                status = await wait_active(quorum, old_epoch + 1, timeout=60)
                out["controller_failover_s"] = time.perf_counter() - killed
                bc = status["broker_controller"]
                out["activation_ms"] = bc["last_activation_ms"]
                print(f"  controller {status['node_id']} active at epoch "
                      f"{bc['controller_epoch']} after {out['controller_failover_s']:.2f} s "
                      f"(its leader change -> first reconcile: {bc['last_activation_ms']} ms); "
                      f"brokers {bc['brokers']}, offline {bc['offline_partitions']}, "
                      f"partitions {bc['partitions']:,}", flush=True)  # fmt: skip
                out["rss_after_failover"] = {i: rss_bytes(quorum.pid(i)) for i in quorum.ids}
            admin_nursery.cancel_scope.cancel()
        fleet.cancel_scope.cancel()


def report(args: argparse.Namespace, out: dict[str, Any]) -> None:
    timeout_s = args.session_timeout_ms / 1000
    n = out.get("partitions", args.partitions)

    def fmt(key: str) -> str:
        return f"{out[key]:.2f} s" if key in out else "-"

    rss = out.get("rss", {})
    worst = max(rss.values(), default=0)
    base = max(out.get("rss_before", {}).values(), default=0)
    per_partition = (worst - base) / n if worst else 0.0
    projected = base + per_partition * 100_000
    rows = [
        ("partitions (RF 3)", f"{n:,}", ""),
        ("creation: all states seen by all brokers", fmt("creation_s"), ""),
        ("broker failover: new leaders seen by all", fmt("broker_failover_leaders_s"),
         f"<= {timeout_s + 0.5:.1f} s (session timeout {args.session_timeout_ms} ms + 0.5 s)"),
        ("broker failover: all ISR changes seen", fmt("broker_failover_all_s"), ""),
        ("controller failover: active + 1st batch", fmt("controller_failover_s"), "<= 2.0 s"),
        ("RSS per controller (max)", f"{worst / (1 << 20):,.0f} MiB",
         f"< 1.5 GiB at 100,000 partitions (empty: {base / (1 << 20):,.0f} MiB, "
         f"{per_partition / 1024:.1f} KiB/partition -> {projected / GIB:.2f} GiB at 100,000)"),
    ]  # fmt: skip
    width = max(len(row[0]) for row in rows)
    print()
    for label, value, target in rows:
        print(f"{label:<{width}}  {value:>10}  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=10_000)
    parser.add_argument("--per-topic", type=int, default=1_000)
    parser.add_argument("--brokers", type=int, default=12)
    parser.add_argument("--session-timeout-ms", type=int, default=4_000)
    parser.add_argument("--timeout", type=float, default=600.0, help="bound of the whole run (s)")
    parser.add_argument("--skip-controller-failover", action="store_true")
    parser.add_argument("--keep-dir", help="data directory to keep (for post-mortems)")
    parser.add_argument("--log-level", default="WARNING", help="controllers' log level")
    parser.add_argument("--profile-dir", help="py-spy record the leader per phase into DIR")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kraft-bc-bench-") as tmp_dir:
        tmp = Path(args.keep_dir or tmp_dir)
        quorum = LocalQuorum(tmp, fsync=True, log_level=args.log_level)
        print(f"3-controller loopback quorum (fsync on), data in {tmp}", flush=True)
        with quorum:
            print("controller pids: " + ", ".join(
                f"{i}={quorum.pid(i)}" for i in quorum.ids), flush=True)  # fmt: skip

            async def bounded() -> None:
                with trio.fail_after(args.timeout):
                    await scenario(quorum, args, out)

            try:
                trio.run(bounded)
            except (trio.TooSlowError, TimeoutError, ZkException) as exc:
                print(f"run stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                report(args, out)


if __name__ == "__main__":
    main()
