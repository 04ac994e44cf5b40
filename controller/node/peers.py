"""Controller-to-controller transport: one outbound TCP connection per peer.

Each node *sends* to a peer over the connection it opened itself and *receives* on the
connections peers opened to it, so there is never a question of which duplicate
connection wins. Raft tolerates loss, so a full or disconnected queue drops frames (the
core retries); it never blocks the Raft loop.

Frames are written to the socket at once when it is idle (a non-blocking write from the
caller, usually the Raft loop); only what the kernel does not take is left to the sender
task. So a heartbeat or an append costs one system call and no extra task switch: on an
idle quorum each task wake-up is a measurable share of the CPU, and on the write path each
hop through the scheduler adds latency.
"""

from __future__ import annotations

import errno
import logging
import os
from collections import deque

import trio

from controller.node.codec import Hello, encode_frame
from controller.node.config import Address
from controller.raft.types import NodeId

log = logging.getLogger(__name__)

MAX_QUEUED_BYTES = 64 << 20  # per peer; beyond this frames are dropped (Raft resends)
RECONNECT_MIN_S = 0.02
RECONNECT_MAX_S = 0.25  # a restarted peer must be reachable again well within an election


class PeerSender:
    """Queue plus task that keeps one outbound connection to `peer_id` alive."""

    def __init__(self, peer_id: NodeId, address: Address, hello: Hello) -> None:
        self.peer_id = peer_id
        self.address = address
        self._hello = encode_frame(hello)
        self._frames: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wake = trio.Event()
        self.connected = False
        self.dropped_frames = 0
        self.connects = 0
        self._retry_now = trio.Event()
        self._fd = -1  # the connected socket, while `connected` and the task is not sending
        self._broken: OSError | None = None
        self.direct_writes = 0

    def has_room(self, size: int) -> bool:
        """A frame of `size` bytes would be queued, not dropped."""
        return self.connected and self._queued_bytes + size <= MAX_QUEUED_BYTES

    def push(self, frame: bytes) -> None:
        """Send or queue a frame (non-blocking). Dropped when disconnected or over the
        byte bound."""
        if not self.connected or self._queued_bytes + len(frame) > MAX_QUEUED_BYTES:
            self.dropped_frames += 1
            return
        if self._fd >= 0 and not self._frames:
            frame = self._write_now(frame)
            if not frame:
                return
        self._frames.append(frame)
        self._queued_bytes += len(frame)
        self._wake.set()

    def push_many(self, frames: list[bytes]) -> None:
        """`push` for several frames at once (one system call)."""
        self.push(frames[0] if len(frames) == 1 else b"".join(frames))

    def _write_now(self, data: bytes) -> bytes:
        """Write what the socket takes right now; return the rest."""
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            return data
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return data
            # Broken connection: the sender task closes it and reconnects; Raft resends.
            self._broken = exc
            self._fd = -1
            self._wake.set()
            return b""
        self.direct_writes += 1
        return data[written:]

    async def run(self) -> None:
        backoff = RECONNECT_MIN_S
        while True:
            try:
                stream = await trio.open_tcp_stream(self.address.host, self.address.port)
            except OSError:
                with trio.move_on_after(backoff):
                    await self._retry_now.wait()
                self._retry_now = trio.Event()
                backoff = min(backoff * 2, RECONNECT_MAX_S)
                continue
            backoff = RECONNECT_MIN_S
            self.connects += 1
            try:
                await self._pump(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                log.info("connection to peer %d (%s) lost: %s", self.peer_id, self.address, exc)
            finally:
                self.connected = False
                self._fd = -1
                self._broken = None
                self._frames.clear()
                self._queued_bytes = 0
                with trio.CancelScope(shield=True):
                    await stream.aclose()
            await trio.sleep(backoff)

    def peer_is_up(self) -> None:
        """The peer just connected to us: it is back, so stop waiting out the backoff."""
        if not self.connected:
            self._retry_now.set()

    async def _pump(self, stream: trio.SocketStream) -> None:
        await stream.send_all(self._hello)
        self.connected = True
        log.info("connected to peer %d at %s", self.peer_id, self.address)
        fd = stream.socket.fileno()
        while True:
            self._fd = fd  # idle: callers may write directly
            while not self._frames:
                self._wake = trio.Event()
                await self._wake.wait()
                if self._broken is not None:
                    raise self._broken
            self._fd = -1  # sending: callers queue behind
            batch = b"".join(self._frames)
            self._frames.clear()
            self._queued_bytes = 0
            await stream.send_all(batch)
