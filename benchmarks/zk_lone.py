"""Lone-client and idle figures of the side-by-side benchmark (`zk_bench.py`).

- `lone_raw`: one connection, one request in flight, to one chosen server (leader or
  follower): a blocking socket with TCP_NODELAY and hand-encoded jute (`zk_load.py`), so the
  client adds as little as possible to the latency it measures;
- `lone_kazoo`: the same with kazoo's `KazooClient` (synchronous `set()`/`create()` in a
  loop), i.e. what an application sees;
- `idle_cpu`: CPU used by a set of processes (all their threads) over a few seconds, read
  from `/proc/<pid>/stat`, as a percentage of one core.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time

from benchmarks.zk_load import (
    OP_CREATE,
    OP_GET_DATA,
    OP_SET_DATA,
    LoadResult,
    encode_connect,
    encode_request,
)

_INT = struct.Struct(">i")
_REPLY_HEADER = struct.Struct(">iqi")
LONE_OPS = {"create": OP_CREATE, "set": OP_SET_DATA, "get": OP_GET_DATA}


class _BlockingSession:
    """A ZooKeeper session on a blocking socket: one request, then its reply."""

    def __init__(self, host: str, port: int, timeout_ms: int = 10000) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.sock.sendall(encode_connect(timeout_ms))
        frame = self._frame()
        (session_id,) = struct.unpack_from(">q", frame, 8)
        if session_id == 0:
            raise ConnectionError(f"{host}:{port} refused the session")

    def _frame(self) -> bytes:
        while True:
            if len(self.buffer) >= 4:
                (length,) = _INT.unpack_from(self.buffer, 0)
                if len(self.buffer) >= 4 + length:
                    frame = bytes(self.buffer[4 : 4 + length])
                    del self.buffer[: 4 + length]
                    return frame
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("connection closed")
            self.buffer += data

    def call(self, xid: int, op: int, path: bytes, data: bytes | None = None) -> int:
        self.sock.sendall(encode_request(xid, op, path, data))
        while True:
            reply_xid, _zxid, err = _REPLY_HEADER.unpack_from(self._frame(), 0)
            if reply_xid in (-1, -2):  # watch event, ping
                continue
            assert reply_xid == xid, (reply_xid, xid)
            return int(err)

    def close(self) -> None:
        try:
            self.sock.sendall(encode_request(1 << 30, -11, b"", None))
            self.sock.settimeout(1)
            self._frame()
        except OSError:
            pass
        finally:
            self.sock.close()


def lone_raw(
    host: str, port: int, op_name: str, *, seconds: float, warmup: float, value_bytes: int = 100
) -> LoadResult:
    """One request in flight on one connection to `host:port` for `seconds` after `warmup`."""
    op = LONE_OPS[op_name]
    value = b"x" * value_bytes
    session = _BlockingSession(host, port)
    root = f"/lone-{op_name}-{port}-{time.monotonic_ns()}".encode()
    assert session.call(1, OP_CREATE, root, b"") == 0
    key = root + b"/k"
    assert session.call(2, OP_CREATE, key, value) == 0
    result = LoadResult(op=op_name, ops=0, errors=0, seconds=seconds, latencies_ms=[])
    xid = 2
    clock = time.perf_counter
    start = clock()
    measuring_from = start + warmup
    deadline = measuring_from + seconds
    while True:
        xid += 1
        path = key if op != OP_CREATE else root + b"/c" + str(xid).encode()
        sent = clock()
        try:
            err = session.call(xid, op, path, value if op != OP_GET_DATA else None)
        except OSError:  # includes timeouts: no answer within the socket's 10 s
            result.errors += 1
            done = clock()
            break
        done = clock()
        result.requests += 1
        if sent >= measuring_from:
            if err == 0:
                result.ops += 1
                result.latencies_ms.append((done - sent) * 1000.0)
            else:
                result.errors += 1
        if done >= deadline:
            break
    result.seconds = done - measuring_from
    session.close()
    return result


def lone_kazoo(
    host: str, port: int, op_name: str, *, seconds: float, warmup: float, value_bytes: int = 100
) -> LoadResult:
    """Like `lone_raw`, through kazoo's synchronous API (one `KazooClient`, one server)."""
    from kazoo.client import KazooClient

    logging.getLogger("kazoo").setLevel(logging.ERROR)
    value = b"x" * value_bytes
    zk = KazooClient(hosts=f"{host}:{port}", timeout=10.0)
    zk.start(timeout=15)
    try:
        root = f"/kazoo-{op_name}-{port}-{time.monotonic_ns()}"
        zk.create(root, b"")
        key = root + "/k"
        zk.create(key, value)
        result = LoadResult(op=op_name, ops=0, errors=0, seconds=seconds, latencies_ms=[])
        clock = time.perf_counter
        start = clock()
        measuring_from = start + warmup
        deadline = measuring_from + seconds
        i = 0
        while True:
            i += 1
            sent = clock()
            if op_name == "set":
                zk.set(key, value)
            elif op_name == "create":
                zk.create(f"{root}/c{i}", value)
            else:
                zk.get(key)
            done = clock()
            if sent >= measuring_from:
                result.ops += 1
                result.latencies_ms.append((done - sent) * 1000.0)
            if done >= deadline:
                break
        result.seconds = done - measuring_from
        return result
    finally:
        zk.stop()
        zk.close()


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def idle_cpu(pids: list[int], seconds: float) -> tuple[float, list[float]]:
    """(total, per process) CPU over `seconds`, in % of one core."""
    before = [cpu_seconds(pid) for pid in pids]
    started = time.monotonic()
    time.sleep(seconds)
    after = [cpu_seconds(pid) for pid in pids]
    elapsed = time.monotonic() - started
    per = [(b - a) / elapsed * 100.0 for a, b in zip(before, after, strict=True)]
    return sum(per), per
