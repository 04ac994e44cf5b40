"""A pipelined ZooKeeper-protocol load generator (hand-encoded jute, trio).

It is deliberately independent of the project's own codec so that the same generator, byte
for byte, drives real Apache ZooKeeper and our controllers in the side-by-side benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import struct
import time
from collections.abc import Sequence

import attrs
import trio

OP_CREATE = 1
OP_GET_DATA = 4
OP_SET_DATA = 5
OP_PING = 11
OP_CLOSE = -11
OP_MIX = -1000  # not a ZooKeeper op: every 10th request a setData, the others getData
MIX_WRITE_EVERY = 10
OPS = {"create": OP_CREATE, "set": OP_SET_DATA, "get": OP_GET_DATA, "mix": OP_MIX}

_INT = struct.Struct(">i")
_REPLY_HEADER = struct.Struct(">iqi")
_REQUEST_HEADER = struct.Struct(">ii")
_OPEN_ACL_UNSAFE = (
    _INT.pack(1) + _INT.pack(31) + b"".join(_INT.pack(len(s)) + s for s in (b"world", b"anyone"))
)


def _string(value: bytes) -> bytes:
    return _INT.pack(len(value)) + value


def encode_connect(timeout_ms: int, session_id: int = 0, password: bytes = b"\0" * 16) -> bytes:
    body = struct.pack(">iqiq", 0, 0, timeout_ms, session_id) + _string(password) + b"\0"
    return _INT.pack(len(body)) + body


def encode_request(xid: int, op: int, path: bytes, data: bytes | None) -> bytes:
    """One framed request. create/setData carry data; getData asks for no watch."""
    if op == OP_CREATE:
        assert data is not None
        body = _string(path) + _string(data) + _OPEN_ACL_UNSAFE + _INT.pack(0)
    elif op == OP_SET_DATA:
        assert data is not None
        body = _string(path) + _string(data) + _INT.pack(-1)
    elif op == OP_GET_DATA:
        body = _string(path) + b"\0"
    else:
        body = b""
    payload = _REQUEST_HEADER.pack(xid, op) + body
    return _INT.pack(len(payload)) + payload


class ZooKeeperError(Exception):
    """A reply carried a non-zero error code."""


@attrs.define
class LoadResult:
    """Figures of one load run."""

    op: str
    ops: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    broken: int = 0  # connections the server closed during the run
    requests: int = 0  # lone rows: every request answered, warm-up included

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class ZkConnection:
    """A minimal ZooKeeper session over one TCP stream, pipelining requests."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.session_id = 0
        self.password = b""
        self.last_zxid = 0

    @classmethod
    async def open(
        cls, host: str, port: int, timeout_ms: int = 10000, session: tuple[int, bytes] | None = None
    ) -> ZkConnection:
        stream = await trio.open_tcp_stream(host, port)
        conn = cls(stream)
        if session is None:
            await stream.send_all(encode_connect(timeout_ms))
        else:
            await stream.send_all(encode_connect(timeout_ms, session[0], session[1]))
        frame = await conn.read_frame()
        _proto, _timeout, session_id = struct.unpack_from(">iiq", frame, 0)
        (pw_len,) = _INT.unpack_from(frame, 16)
        conn.session_id = session_id
        conn.password = bytes(frame[20 : 20 + pw_len])
        if session_id == 0:
            raise ZooKeeperError("session expired or refused")
        return conn

    async def read_frame(self) -> bytes:
        while True:
            if len(self.buffer) >= 4:
                (length,) = _INT.unpack_from(self.buffer, 0)
                if len(self.buffer) >= 4 + length:
                    frame = bytes(self.buffer[4 : 4 + length])
                    del self.buffer[: 4 + length]
                    return frame
            data = await self.stream.receive_some(1 << 16)
            if not data:
                raise trio.BrokenResourceError("connection closed")
            self.buffer += data

    async def read_reply(self) -> tuple[int, int, int]:
        """(xid, zxid, err) of the next reply that is not a watch event or ping."""
        while True:
            frame = await self.read_frame()
            xid, zxid, err = _REPLY_HEADER.unpack_from(frame, 0)
            if xid in (-1, -2):
                continue
            if zxid > 0:
                self.last_zxid = zxid
            return xid, zxid, err

    async def call(self, xid: int, op: int, path: bytes, data: bytes | None = None) -> int:
        await self.stream.send_all(encode_request(xid, op, path, data))
        reply_xid, _zxid, err = await self.read_reply()
        assert reply_xid == xid, (reply_xid, xid)
        return int(err)

    async def aclose(self) -> None:
        with trio.move_on_after(1):
            with contextlib.suppress(trio.BrokenResourceError):
                await self.stream.send_all(encode_request(1 << 30, OP_CLOSE, b"", None))
        await self.stream.aclose()


def parse_servers(connect: str) -> list[tuple[str, int]]:
    servers = []
    for item in connect.split(","):
        host, _, port = item.strip().rpartition(":")
        servers.append((host, int(port)))
    return servers


async def _drive(
    conn: ZkConnection,
    op: int,
    paths: Sequence[bytes],
    value: bytes,
    inflight: int,
    deadline: float,
    warmup_end: float,
    result: LoadResult,
) -> None:
    """Keep `inflight` requests outstanding on one connection until the deadline."""
    sent_at: dict[int, float] = {}
    xid = 0
    limit = trio.Semaphore(inflight)

    async def sender() -> None:
        nonlocal xid
        while time.monotonic() < deadline:
            await limit.acquire()
            batch = []
            while True:
                xid += 1
                path = paths[xid % len(paths)]
                kind = op
                if op == OP_MIX:
                    kind = OP_SET_DATA if xid % MIX_WRITE_EVERY == 0 else OP_GET_DATA
                data = value if kind != OP_GET_DATA else None
                if kind == OP_CREATE:
                    path = path + b"-" + str(xid).encode()
                batch.append(encode_request(xid, kind, path, data))
                sent_at[xid] = time.monotonic()
                try:
                    limit.acquire_nowait()
                except trio.WouldBlock:
                    break
            await conn.stream.send_all(b"".join(batch))

    async def receiver(cancel: trio.CancelScope) -> None:
        while True:
            reply_xid, _zxid, err = await conn.read_reply()
            now = time.monotonic()
            start = sent_at.pop(reply_xid)
            limit.release()
            if now >= warmup_end:
                if err == 0:
                    result.ops += 1
                    result.latencies_ms.append((now - start) * 1000.0)
                else:
                    result.errors += 1
            if now >= deadline and not sent_at:
                cancel.cancel()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            nursery.start_soon(receiver, nursery.cancel_scope)
    except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        # The server closed the connection (e.g. it lost its leader): count what was in
        # flight as errors and go on with the other connections.
        result.errors += len(sent_at)
        result.broken += 1


async def run_load(
    connect: str,
    op_name: str,
    *,
    connections: int = 16,
    inflight: int = 32,
    value_bytes: int = 100,
    seconds: float = 6.0,
    warmup: float = 2.0,
    prefix: str = "/bench",
) -> LoadResult:
    """Drive `op_name` (create|set|get|mix) over `connections` sessions, `inflight` each.
    `mix`: 90 % getData, 10 % setData on the same keys."""
    op = OPS[op_name]
    servers = parse_servers(connect)
    value = b"x" * value_bytes
    conns = [await ZkConnection.open(*servers[i % len(servers)]) for i in range(connections)]
    root = f"{prefix}-{op_name}-{time.monotonic_ns()}".encode()
    await conns[0].call(1, OP_CREATE, root, b"")
    keys = [root + b"/k" + str(i).encode() for i in range(64)]
    if op != OP_CREATE:
        for i, key in enumerate(keys):
            await conns[0].call(2 + i, OP_CREATE, key, value)
        # Reads on other servers must see the keys: one write on each connection's server.
        for conn in conns:
            await conn.call(1 << 29, OP_SET_DATA, keys[0], value)
    result = LoadResult(op=op_name, ops=0, errors=0, seconds=seconds, latencies_ms=[])
    start = time.monotonic()
    warmup_end = start + warmup
    deadline = warmup_end + seconds
    async with trio.open_nursery() as nursery:
        for index, conn in enumerate(conns):
            # Creates need a distinct name per connection: xids repeat across connections.
            per_conn_paths = keys if op != OP_CREATE else [root + b"/c" + str(index).encode()]
            nursery.start_soon(
                _drive, conn, op, per_conn_paths, value, inflight, deadline, warmup_end, result
            )
    for conn in conns:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await conn.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connect", required=True, help="host:port,... of the servers")
    parser.add_argument("--op", choices=list(OPS), default="set")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    result = trio.run(
        lambda: run_load(
            args.connect,
            args.op,
            connections=args.connections,
            inflight=args.inflight,
            seconds=args.seconds,
            warmup=args.warmup,
        )
    )
    print(
        f"{result.op}: {result.rate:,.0f} ops/s  p50 {result.percentile(0.5):.2f} ms  "
        f"p99 {result.percentile(0.99):.2f} ms  errors {result.errors}"
    )


if __name__ == "__main__":
    main()
