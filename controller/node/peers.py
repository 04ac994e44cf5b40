"""Controller-to-controller transport: one outbound TCP connection per peer.

Each node *sends* to a peer over the connection it opened itself and *receives* on the
connections peers opened to it, so there is never a question of which duplicate
connection wins. Raft tolerates loss, so a full or disconnected queue drops frames (the
core retries); it never blocks the Raft loop.
"""

from __future__ import annotations

import logging
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

    def push(self, frame: bytes) -> None:
        """Queue a frame (non-blocking). Dropped when disconnected or over the byte bound."""
        if not self.connected or self._queued_bytes + len(frame) > MAX_QUEUED_BYTES:
            self.dropped_frames += 1
            return
        self._frames.append(frame)
        self._queued_bytes += len(frame)
        self._wake.set()

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
        while True:
            while not self._frames:
                self._wake = trio.Event()
                await self._wake.wait()
            batch = b"".join(self._frames)
            self._frames.clear()
            self._queued_bytes = 0
            await stream.send_all(batch)
