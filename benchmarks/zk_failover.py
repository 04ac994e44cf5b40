"""Availability figures of the side-by-side benchmark (`zk_bench.py`), measured the same way
on both systems with the hand-encoded client of `zk_load.py`:

- leader-kill window: writers (one request in flight) on the two non-leader servers keep
  their sessions across reconnects; the leader is SIGKILLed; the window is the time until
  the first write *sent after the kill* succeeds;
- ephemeral-expiry delay: a session with a 4,000 ms timeout creates an ephemeral node and
  its connection dies without closing the session; the delay is the time until another
  client sees the node gone.
"""

from __future__ import annotations

import contextlib
import struct
import time

import trio

from benchmarks.zk_load import OP_CREATE, OP_SET_DATA, ZkConnection, encode_request
from benchmarks.zk_systems import System

OP_EXISTS = 3
OP_SYNC = 9


def _path_request(xid: int, op: int, path: bytes) -> bytes:
    """exists (path, watch=false) or sync (path)."""
    body = struct.pack(">ii", xid, op) + struct.pack(">i", len(path)) + path
    if op == OP_EXISTS:
        body += b"\0"
    return struct.pack(">i", len(body)) + body


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
