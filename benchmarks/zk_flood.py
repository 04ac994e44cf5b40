"""Overload: a setData flood far beyond what the quorum commits (issue #10).

    python -m benchmarks.zk_flood [--connections 200] [--inflight 1000] [--seconds 20]
                                  [--processes 2] [--lone-delay 3] [--drain 120]
                                  [--system ours|zookeeper|both] [--global-outstanding-limit N]

Starts a 3-controller quorum (`LocalQuorum`, fsync on, as a user runs it), or Apache
ZooKeeper with `--system zookeeper`, then:

- `--processes` load processes share `--connections` ZooKeeper sessions, spread over the
  three servers; each keeps `--inflight` pipelined setData requests outstanding on its own
  node `/flood/c<i>` for `--seconds`, with values 1, 2, 3, ... (hand-encoded jute, as
  `zk_load.py`). Afterwards every connection waits (up to `--drain` seconds) until each request
  it sent is answered or the server closed the connection;
- a lone client (one request in flight, blocking socket, as `zk_lone.py`) connects
  `--lone-delay` seconds into the flood and loops create + setData until the flood ends;
- every 0.2 s the VmRSS of each server process is sampled; every second, each controller's
  status (service counters).

It reports leader changes and term before/after, peak RSS, requests sent / answered (ok,
error codes, lost with a closed connection, unanswered), the durability check (every node
read back from every server holds a value >= the highest one acknowledged for it), the lone
client's latency and errors, how evenly the connections were served (answers per
connection, longest wait for an answer), throughput and the controllers' service counters.
Exit status 1 if an overload requirement is violated (leader change, lost acknowledged
write, unanswered request, error reply, connection closed by a server, lone-client error).
`--system both` runs ours, then ZooKeeper; `--data-dir` keeps the controllers' logs.

The pieces (`Flood`, `run_flood`, ...) are reused by `tests/node/test_overload.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from benchmarks.zk_load import (
    OP_CREATE,
    OP_GET_DATA,
    OP_SET_DATA,
    ZkConnection,
    encode_request,
    parse_servers,
)
from benchmarks.zk_lone import _BlockingSession

ROOT = b"/flood"
LONE_ROOT = b"/flood-lone"
CONNECTION_LOSS = -4
_INT = struct.Struct(">i")
_REPLY_HEADER = struct.Struct(">iqi")


def node_path(index: int) -> bytes:
    return ROOT + b"/c" + str(index).encode()


# ---------------------------------------------------------------------- load process side


@attrs.define
class ConnStats:
    """What one flooding connection saw."""

    index: int
    sent: int = 0
    ok: int = 0
    errors: dict[int, int] = attrs.field(factory=dict)  # ZooKeeper error code -> count
    lost: int = 0  # in flight when the server closed the connection
    unanswered: int = 0  # in flight, connection open, at the end of the drain: a hang
    closed_by_server: bool = False
    highest_sent: int = 0
    highest_acked: int = 0
    max_gap_s: float = 0.0  # longest wait for the next answer while requests were in flight
    connect_error: str = ""


async def _flood_connection(
    host: str,
    port: int,
    index: int,
    inflight: int,
    start: float,
    deadline: float,
    drain_until: float,
    stats: ConnStats,
) -> None:
    """Keep `inflight` setData of increasing values in flight on node `index` until the
    deadline; then wait for every reply until `drain_until` (wall clock: time.time())."""
    try:
        conn = await ZkConnection.open(host, port, timeout_ms=30000)
    except Exception as exc:
        stats.connect_error = f"{type(exc).__name__}: {exc}"
        return
    path = node_path(index)
    pending: deque[tuple[int, int]] = deque()  # (xid, value), in send order
    room = trio.Semaphore(inflight)
    done_sending = trio.Event()
    await trio.sleep(max(0.0, start - time.time()))

    async def sender() -> None:
        xid = 0
        while time.time() < deadline:
            await room.acquire()
            batch = []
            while True:
                xid += 1
                stats.highest_sent = xid  # value == xid: 1, 2, 3, ...
                batch.append(encode_request(xid, OP_SET_DATA, path, str(xid).encode()))
                pending.append((xid, xid))
                try:
                    room.acquire_nowait()
                except trio.WouldBlock:
                    break
            stats.sent += len(batch)
            # Never cancelled mid-send: a partial frame would make the stream unusable.
            with trio.CancelScope(shield=True):
                await conn.stream.send_all(b"".join(batch))
        done_sending.set()

    async def receiver(cancel: trio.CancelScope) -> None:
        last = time.monotonic()
        while True:
            if done_sending.is_set() and not pending:
                cancel.cancel()
                return
            xid, _zxid, err = await conn.read_reply()
            now = time.monotonic()
            stats.max_gap_s = max(stats.max_gap_s, now - last)
            last = now
            expected, value = pending.popleft()
            assert xid == expected, f"reply {xid} out of order (expected {expected})"
            room.release()
            if err == 0:
                stats.ok += 1
                stats.highest_acked = max(stats.highest_acked, value)
            else:
                stats.errors[err] = stats.errors.get(err, 0) + 1
            if done_sending.is_set() and not pending:
                cancel.cancel()
                return

    try:
        with trio.move_on_at(trio.current_time() + max(0.0, drain_until - time.time())):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                nursery.start_soon(receiver, nursery.cancel_scope)
        stats.unanswered = len(pending)
    except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        stats.closed_by_server = True
        stats.lost = len(pending)
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        await conn.aclose()


async def _worker(spec: dict[str, Any]) -> list[ConnStats]:
    servers = parse_servers(spec["connect"])
    indexes: list[int] = spec["indexes"]
    stats = [ConnStats(i) for i in indexes]
    start, deadline, drain_until = spec["start"], spec["deadline"], spec["drain_until"]
    async with trio.open_nursery() as nursery:
        for s in stats:
            host, port = servers[s.index % len(servers)]
            nursery.start_soon(
                _flood_connection,
                host,
                port,
                s.index,
                spec["inflight"],
                start,
                deadline,
                drain_until,
                s,
            )
    return stats


def worker_main() -> None:
    """`--worker`: read a JSON spec on stdin, flood, print the JSON result."""
    spec = json.loads(sys.stdin.readline())
    stats = trio.run(_worker, spec)
    print(json.dumps([attrs.asdict(s) for s in stats]), flush=True)


# ---------------------------------------------------------------------- samplers


class RssSampler(threading.Thread):
    """Peak VmRSS (KiB) of each process, sampled every `interval` seconds."""

    def __init__(self, pids: dict[int, int], interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pids = pids  # server -> pid
        self.interval = interval
        self.peak_kib: dict[int, int] = dict.fromkeys(pids, 0)
        self.first_kib: dict[int, int] = {}
        self._halt = threading.Event()

    @staticmethod
    def rss_kib(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def run(self) -> None:
        while not self._halt.is_set():
            for server, pid in self.pids.items():
                kib = self.rss_kib(pid)
                self.first_kib.setdefault(server, kib)
                self.peak_kib[server] = max(self.peak_kib[server], kib)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def controller_status(address: Any, timeout: float = 2.0) -> dict[str, Any] | None:
    from controller.node.admin_client import AdminError, query_status

    try:
        status: dict[str, Any] = trio.run(query_status, address, timeout)
    except (AdminError, OSError, trio.TooSlowError):
        return None
    return status


class StatusSampler(threading.Thread):
    """Every `interval` s: each controller's status; keeps the peaks of service counters
    and every (term, leader) seen."""

    PEAKS = ("outstanding_requests", "leader_backlog")

    def __init__(self, addresses: dict[int, Any], interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.addresses = addresses
        self.interval = interval
        self.peaks: dict[int, dict[str, int]] = {s: dict.fromkeys(self.PEAKS, 0) for s in addresses}
        self.leaders_seen: set[tuple[int, int | None]] = set()
        self.missed = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for server, address in self.addresses.items():
                st = controller_status(address)
                if st is None:
                    self.missed += 1
                    continue
                self.leaders_seen.add((st["term"], st["leader_id"]))
                for key in self.PEAKS:
                    value = st["service"].get(key, 0)
                    self.peaks[server][key] = max(self.peaks[server][key], value)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# ---------------------------------------------------------------------- lone client


@attrs.define
class LoneResult:
    latencies_ms: list[float] = attrs.field(factory=list)
    ok: int = 0
    errors: list[str] = attrs.field(factory=list)
    reconnects: int = 0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class LoneClient(threading.Thread):
    """One request in flight: create /flood-lone/n<k>, then setData on it, in a loop, from
    `start` (time.time()) until `deadline`. Its connect is the first thing it does at
    `start`; that handshake's time is counted as a latency too."""

    def __init__(self, host: str, port: int, start: float, deadline: float) -> None:
        super().__init__(daemon=True)
        self.host, self.port = host, port
        self.start_at, self.deadline = start, deadline
        self.result = LoneResult()

    def _connect(self) -> _BlockingSession:
        t0 = time.perf_counter()
        session = _BlockingSession(self.host, self.port, timeout_ms=30000)
        self.result.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        return session

    def run(self) -> None:
        time.sleep(max(0.0, self.start_at - time.time()))
        r = self.result
        session: _BlockingSession | None = None
        xid = 0
        k = 0
        while time.time() < self.deadline:
            try:
                if session is None:
                    session = self._connect()
                k += 1
                path = LONE_ROOT + b"/n" + str(k).encode()
                for op, data in ((OP_CREATE, b"v0"), (OP_SET_DATA, b"v" + str(k).encode())):
                    xid += 1
                    t0 = time.perf_counter()
                    err = session.call(xid, op, path, data)
                    r.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
                    if err:
                        r.errors.append(f"{'create' if op == OP_CREATE else 'setData'} err {err}")
                    else:
                        r.ok += 1
            except (OSError, AssertionError) as exc:
                r.errors.append(f"{type(exc).__name__}: {exc}")
                r.reconnects += 1
                if session is not None:
                    session.sock.close()
                session = None
        if session is not None:
            session.close()


# ---------------------------------------------------------------------- the flood


@attrs.define
class FloodResult:
    connections: int
    inflight: int
    seconds: float
    conns: list[ConnStats]
    lone: LoneResult
    rss_first_kib: dict[int, int]
    rss_peak_kib: dict[int, int]
    before: dict[int, dict[str, Any]]  # controller status (ours only)
    after: dict[int, dict[str, Any]]
    peaks: dict[int, dict[str, int]]
    leaders_seen: set[tuple[int, int | None]]
    readback_bad: list[tuple[int, int, int, int]]  # (server, node, value, highest acked)
    readback_checked: int
    flood_seconds: float  # from the start to the last answer (drain included)
    drain_seconds: float
    status_missed: int = 0

    def total(self, field: str) -> int:
        return sum(getattr(c, field) for c in self.conns)

    @property
    def error_codes(self) -> Counter[int]:
        codes: Counter[int] = Counter()
        for c in self.conns:
            codes.update({int(k): v for k, v in c.errors.items()})
        return codes

    @property
    def leader_changed(self) -> bool:
        if not self.before:
            return len(self.leaders_seen) > 1
        for server, st in self.before.items():
            end = self.after.get(server)
            # Pre-vote attempts (counted in leader_changes) do not disturb the leader.
            if end is None or (end["term"], end["leader_id"], end["elections_started"]) != (
                st["term"],
                st["leader_id"],
                st["elections_started"],
            ):
                return True
        return len(self.leaders_seen) > 1

    @property
    def problems(self) -> list[str]:
        out = []
        if self.leader_changed:
            out.append("the leader changed during the flood")
        if self.readback_bad:
            out.append(
                f"{len(self.readback_bad)} acknowledged writes lost: {self.readback_bad[:5]}"
            )
        if self.error_codes:
            out.append(f"requests answered with errors {dict(self.error_codes)}")
        if closed := sum(1 for c in self.conns if c.closed_by_server):
            out.append(f"{closed} connections closed by the server")
        if self.total("unanswered"):
            out.append(f"{self.total('unanswered')} requests never answered (connection open)")
        if refused := [c for c in self.conns if c.connect_error]:
            out.append(
                f"{len(refused)} flood connections failed to connect: {refused[0].connect_error}"
            )
        if self.lone.errors:
            out.append(f"lone client: {len(self.lone.errors)} errors: {self.lone.errors[:3]}")
        if not self.lone.ok:
            out.append("lone client: no write succeeded")
        return out


def _create_nodes(connect: str, count: int) -> None:
    async def go() -> None:
        host, port = parse_servers(connect)[0]
        conn = await ZkConnection.open(host, port)
        requests = [
            encode_request(1, OP_CREATE, ROOT, b""),
            encode_request(2, OP_CREATE, LONE_ROOT, b""),
        ]
        requests += [encode_request(3 + i, OP_CREATE, node_path(i), b"0") for i in range(count)]
        await conn.stream.send_all(b"".join(requests))
        for _ in requests:
            _xid, _zxid, err = await conn.read_reply()
            assert err in (0, -110), f"create failed: {err}"  # -110: NODEEXISTS
        # Reads on every server must see the nodes: one write through each server.
        for h, p in parse_servers(connect):
            other = await ZkConnection.open(h, p)
            assert await other.call(1, OP_SET_DATA, ROOT, b"") == 0
            await other.aclose()
        await conn.aclose()

    trio.run(go)


READ_BACK_S = 10.0


def read_back(connect: str, count: int) -> dict[int, dict[int, int]]:
    """server (1-based) -> node index -> value, read with getData from each server after a
    `sync`-like write through that server (so its replica has applied the whole flood)."""

    async def one(host: str, port: int) -> dict[int, int]:
        with trio.fail_after(READ_BACK_S):  # a server that stopped reading must not hang us
            return await read_all(host, port)

    async def read_all(host: str, port: int) -> dict[int, int]:
        conn = await ZkConnection.open(host, port, timeout_ms=30000)
        # A write through this server is applied here after every earlier entry.
        assert await conn.call(1, OP_SET_DATA, ROOT, b"") == 0
        await conn.stream.send_all(
            b"".join(encode_request(2 + i, OP_GET_DATA, node_path(i), None) for i in range(count))
        )
        values: dict[int, int] = {}
        while len(values) < count:
            frame = await conn.read_frame()
            xid, _zxid, err = _REPLY_HEADER.unpack_from(frame, 0)
            if xid in (-1, -2):
                continue
            i = len(values)
            assert xid == 2 + i and err == 0, (xid, err)
            (length,) = _INT.unpack_from(frame, 16)
            values[i] = int(frame[20 : 20 + length])
        await conn.aclose()
        return values

    out: dict[int, dict[int, int]] = {}
    for server, (host, port) in enumerate(parse_servers(connect), start=1):
        for attempt in range(3):
            try:
                out[server] = trio.run(one, host, port)
                break
            except (
                OSError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
                trio.TooSlowError,
            ) as exc:
                print(f"read back from server {server} failed ({exc!r}); attempt {attempt + 1}")
                time.sleep(1.0)
        else:
            out[server] = {}  # every node counts as lost on it
    return out


def run_flood(
    connect: str,
    *,
    pids: dict[int, int],
    status_addresses: dict[int, Any] | None,
    connections: int = 200,
    inflight: int = 1000,
    seconds: float = 20.0,
    processes: int = 2,
    lone_delay: float = 3.0,
    lone_server: int = 1,
    drain: float = 120.0,
    settle: float = 0.0,
    disrupt: tuple[float, Callable[[], None]] | None = None,
) -> FloodResult:
    """The flood against servers already running (`connect`: host:port of servers 1..3).
    `disrupt`: (seconds into the flood, action), e.g. pausing the leader."""
    _create_nodes(connect, connections)
    if settle:
        time.sleep(settle)
    statuses = status_addresses or {}
    before = {s: st for s, a in statuses.items() if (st := controller_status(a)) is not None}
    # Load processes: connect, then flood from a common start time.
    setup = 3.0 + connections / 100.0  # time for every session to be created first
    start = time.time() + setup
    deadline = start + seconds
    drain_until = deadline + drain
    procs = []
    for p in range(processes):
        spec = {
            "connect": connect,
            "indexes": list(range(p, connections, processes)),
            "inflight": inflight,
            "start": start,
            "deadline": deadline,
            "drain_until": drain_until,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.zk_flood", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()
        procs.append(proc)
    rss = RssSampler(pids)
    sampler = StatusSampler(statuses)
    host, port = parse_servers(connect)[lone_server - 1]
    lone = LoneClient(host, port, start + lone_delay, deadline)
    time.sleep(max(0.0, start - time.time()))
    rss.start()
    sampler.start()
    lone.start()
    if disrupt is not None:
        threading.Timer(max(0.0, start + disrupt[0] - time.time()), disrupt[1]).start()
    conns: list[ConnStats] = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=drain_until - time.time() + 30)
            conns += [ConnStats(**c) for c in json.loads(out)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finished = time.time()
    lone.join(timeout=15)
    rss.stop()
    sampler.stop()
    after = {s: st for s, a in statuses.items() if (st := controller_status(a)) is not None}
    values = read_back(connect, connections)
    acked = {c.index: c.highest_acked for c in conns}
    bad = [
        (server, i, got.get(i, -1), acked[i])
        for server, got in values.items()
        for i in acked
        if got.get(i, -1) < acked[i]
    ]
    return FloodResult(
        connections=connections,
        inflight=inflight,
        seconds=seconds,
        conns=conns,
        lone=lone.result,
        rss_first_kib=rss.first_kib,
        rss_peak_kib=rss.peak_kib,
        before=before,
        after=after,
        peaks=sampler.peaks,
        leaders_seen=sampler.leaders_seen,
        readback_bad=bad,
        readback_checked=sum(len(v) for v in values.values()),
        flood_seconds=finished - start,
        drain_seconds=max(0.0, finished - deadline),
        status_missed=sampler.missed,
    )


# ---------------------------------------------------------------------- systems


@contextlib.contextmanager
def our_quorum(extra_args: Sequence[str] = (), data_dir: Path | None = None) -> Iterator[Any]:
    """A 3-controller `LocalQuorum`, fsync on, ready."""
    from controller.localquorum import LocalQuorum

    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kraft-flood-")))
        q = LocalQuorum(data_dir, fsync=True, log_level="INFO", extra_args=list(extra_args))
        stack.enter_context(q)
        q.wait_until_ready(timeout=30)
        yield q


PAUSE_S = 1.2  # longer than the election timeout (200-400 ms): the others elect a leader


def pause(pid: int, seconds: float) -> None:
    """SIGSTOP a process for `seconds`, then SIGCONT it (a stalled leader)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def flood_ours(args: argparse.Namespace) -> FloodResult:
    extra = []
    if args.global_outstanding_limit:
        extra = ["--global-outstanding-limit", str(args.global_outstanding_limit)]
    data_dir = Path(args.data_dir) if args.data_dir else None
    with our_quorum(extra, data_dir) as q:
        pids = {i: pid for i in q.ids if (pid := q.pid(i)) is not None}
        addresses = {i: q.client_address(i) for i in q.ids}
        leader = q.wait_for_leader()["node_id"]
        lone_server = args.lone_server or next(i for i in q.ids if i != leader)
        disrupt = None
        if args.pause_leader_at is not None:
            disrupt = (args.pause_leader_at, lambda: pause(pids[leader], PAUSE_S))
        result = run_flood(
            q.connect_string,
            pids=pids,
            status_addresses=addresses,
            connections=args.connections,
            inflight=args.inflight,
            seconds=args.seconds,
            processes=args.processes,
            lone_delay=args.lone_delay,
            lone_server=lone_server,
            drain=args.drain,
            disrupt=disrupt,
        )
        result_server = (
            f"controller {lone_server} ({'leader' if lone_server == leader else 'follower'})"
        )
        print(f"lone client on {result_server}; leader at start: controller {leader}")
        for i in q.ids:
            log = (q.data_dir / f"node-{i}.log").read_text(errors="replace")
            if "Traceback" in log:
                print(f"WARNING controller {i} logged a traceback")
        return result


def flood_zookeeper(args: argparse.Namespace) -> FloodResult:
    from benchmarks.zk_ensemble import ZooKeeperEnsemble

    e = ZooKeeperEnsemble(3)
    try:
        e.start()
        e.wait_ready()
        pids = {i: p.pid for i, p in e.processes.items()}
        leader_before = e.leader()
        result = run_flood(
            e.connect_string,
            pids=pids,
            status_addresses=None,
            connections=args.connections,
            inflight=args.inflight,
            seconds=args.seconds,
            processes=args.processes,
            lone_delay=args.lone_delay,
            lone_server=args.lone_server or 1,
            drain=args.drain,
            settle=5.0,
        )
        # ZooKeeper has no status counters here: its leader (srvr) before and after.
        result.leaders_seen = {(0, leader_before), (0, e.leader())}
        print(f"ZooKeeper leader before / after the flood: {leader_before} / {e.leader()}")
        return result
    finally:
        e.stop()


# ---------------------------------------------------------------------- report


def report(name: str, r: FloodResult) -> None:
    sent, ok = r.total("sent"), r.total("ok")
    codes = r.error_codes
    errors = sum(codes.values())
    lost, unanswered = r.total("lost"), r.total("unanswered")
    closed = sum(1 for c in r.conns if c.closed_by_server)
    oks = [c.ok for c in r.conns]
    rows: list[tuple[str, str]] = [
        ("flood", f"{r.connections} connections x {r.inflight} in flight, {r.seconds:g} s setData"),
        ("requests sent", f"{sent:,}"),
        ("  answered ok", f"{ok:,}"),
        ("  answered with an error", f"{errors:,} {dict(codes) if codes else ''}".rstrip()),
        (
            "  lost with a closed connection",
            f"{lost:,} ({closed} connections closed by the server)",
        ),
        ("  unanswered (hang)", f"{unanswered:,}"),
        (
            "answers per connection min/med/max",
            f"{min(oks, default=0):,} / {statistics.median(oks) if oks else 0:,.0f} / "
            f"{max(oks, default=0):,}",
        ),
        (
            "longest wait for an answer on a conn",
            f"{max((c.max_gap_s for c in r.conns), default=0):.1f} s "
            f"(median over connections {statistics.median(c.max_gap_s for c in r.conns):.1f} s)",
        ),
        (
            "throughput (ok / flood+drain s)",
            f"{ok / r.flood_seconds:,.0f} ops/s over {r.flood_seconds:.1f} s",
        ),
        ("drain after the flood", f"{r.drain_seconds:.1f} s"),
        (
            "acknowledged writes read back",
            f"{r.readback_checked:,} reads, {len(r.readback_bad)} below the highest ack",
        ),
    ]
    lone = r.lone
    rows += [
        (
            "lone client ops ok / errors",
            f"{lone.ok} / {len(lone.errors)}" + (f" {lone.errors[:3]}" if lone.errors else ""),
        ),
        (
            "lone client latency p50/p99/max",
            f"{lone.percentile(0.5):.1f} / {lone.percentile(0.99):.1f} / "
            f"{max(lone.latencies_ms, default=float('nan')):.1f} ms",
        ),
    ]
    for server in sorted(r.rss_peak_kib):
        rows.append(
            (
                f"server {server} RSS start / peak",
                f"{r.rss_first_kib.get(server, 0) / 1024:.0f} / "
                f"{r.rss_peak_kib[server] / 1024:.0f} MB",
            )
        )
    if r.before:

        def terms(sts: dict[int, dict[str, Any]]) -> list[tuple[int, int | None]]:
            return sorted({(st["term"], st["leader_id"]) for st in sts.values()})

        rows.append(("(term, leader) before", str(terms(r.before))))
        rows.append(("(term, leader) after", str(terms(r.after))))
        rows.append(("(term, leader) seen during", str(sorted(r.leaders_seen, key=str))))
        rows.append(
            (
                "leader_changes before -> after",
                ", ".join(
                    f"c{s}: {r.before[s]['leader_changes']} -> {r.after[s]['leader_changes']}"
                    for s in sorted(r.before)
                    if s in r.after
                ),
            )
        )
        rows.append(
            (
                "elections_started before -> after",
                ", ".join(
                    f"c{s}: {r.before[s]['elections_started']} -> {r.after[s]['elections_started']}"
                    for s in sorted(r.before)
                    if s in r.after
                ),
            )
        )
        for key in (
            "throttled_reads",
            "leader_backlog_peak",
            "forwards_failed",
            "requests_failed",
            "outstanding_requests",
        ):
            rows.append(
                (
                    key + (" (after)" if key == "outstanding_requests" else ""),
                    ", ".join(
                        f"c{s}: {st['service'].get(key)}" for s, st in sorted(r.after.items())
                    ),
                )
            )
        rows.append(
            (
                "sampled peak outstanding / backlog",
                ", ".join(
                    f"c{s}: {p['outstanding_requests']} / {p['leader_backlog']}"
                    for s, p in sorted(r.peaks.items())
                )
                + f" (status queries unanswered: {r.status_missed})",
            )
        )
    width = max(len(k) for k, _ in rows) + 2
    print(f"\n== {name}")
    for key, value in rows:
        print(f"{key:<{width}}{value}")
    problems = r.problems
    print("verdict: " + ("OK" if not problems else "PROBLEMS: " + "; ".join(problems)), flush=True)


def main() -> None:
    if "--worker" in sys.argv[1:]:
        worker_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--inflight", type=int, default=1000, help="per connection")
    parser.add_argument("--seconds", type=float, default=20.0, help="flood duration")
    parser.add_argument("--processes", type=int, default=2, help="load processes")
    parser.add_argument("--lone-delay", type=float, default=3.0)
    parser.add_argument("--lone-server", type=int, default=0, help="1-3; default a follower")
    parser.add_argument("--drain", type=float, default=120.0, help="max wait for answers, s")
    parser.add_argument("--data-dir", help="ours: keep the controllers' data and logs here")
    parser.add_argument("--json", help="write per-connection figures to this file")
    parser.add_argument("--system", choices=["ours", "zookeeper", "both"], default="ours")
    parser.add_argument(
        "--global-outstanding-limit", type=int, default=0, help="ours: override (default 1000)"
    )
    parser.add_argument(
        "--pause-leader-at",
        type=float,
        help="ours: SIGSTOP the leader this many seconds into the flood, for 1.2 s",
    )
    args = parser.parse_args()
    print(
        f"flood: {args.processes} processes, {args.connections} connections x {args.inflight} "
        f"in flight, {args.seconds:g} s setData; lone client after {args.lone_delay:g} s; "
        f"fsync on; {os.cpu_count()} CPUs",
        flush=True,
    )
    bad = False
    names = ["ours", "zookeeper"] if args.system == "both" else [args.system]
    for name in names:
        result = flood_ours(args) if name == "ours" else flood_zookeeper(args)
        report(name, result)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {
                        "conns": [attrs.asdict(c) for c in result.conns],
                        "lone": attrs.asdict(result.lone),
                    },
                    f,
                )
        bad |= bool(result.problems)
        if result.lone.latencies_ms:
            print(f"lone client median {statistics.median(result.lone.latencies_ms):.1f} ms")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
