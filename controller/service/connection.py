"""One client connection's state and its in-order reply queue (trio shell, any stream).

Replies leave in request order (FIFO per session): a read queued behind a pending write is
evaluated only when it reaches the head, after that write applied, so a client reads its own
writes. `OutstandingLimit` is ZooKeeper's globalOutstandingLimit: the controller stops reading
from every client socket while that many requests are queued, so TCP slows the clients down
and memory stays bounded.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable

import trio


class Slot:
    """One request awaiting its turn to be answered on a connection."""

    __slots__ = ("compute", "done", "op", "reply", "seq", "xid")

    def __init__(self, xid: int, op: int) -> None:
        self.xid = xid
        self.op = op
        self.reply: bytes | None = None
        self.done = False
        self.seq = 0  # a write's sequence number with the forwarder, once proposed
        # For reads: evaluated when the slot reaches the head of the queue.
        self.compute: Callable[[], bytes] | None = None


class OutstandingLimit:
    """Requests queued on all connections of one controller, against a limit. Readers that
    must wait queue up; when the count has fallen to half, every queued reader gets a turn
    with an equal share of the room. While any reader waits, no other reader queues requests
    outside a turn, so no connection is starved by those that happen to run first."""

    def __init__(self, limit: int) -> None:
        assert limit > 0
        self.limit = limit
        self.count = 0
        self.throttled = 0  # times a reader had to wait
        self._waiting: deque[_Turn] = deque()  # in arrival order

    @property
    def contended(self) -> bool:
        return bool(self._waiting)

    def add(self) -> None:
        self.count += 1

    def remove(self, n: int = 1) -> None:
        self.count -= n
        assert self.count >= 0
        if self._waiting and self.count <= self.limit // 2:
            self._hand_out()

    def _hand_out(self) -> None:
        waiting = list(self._waiting)
        self._waiting.clear()
        share = max(1, (self.limit - self.count) // len(waiting))
        for turn in waiting:
            turn.share = share
            turn.event.set()

    @property
    def full(self) -> bool:
        return self.count >= self.limit

    async def wait_for_room(self) -> int:
        """Wait for a turn; return how many requests this reader may queue in it."""
        self.throttled += 1
        turn = _Turn()
        self._waiting.append(turn)
        if self.count <= self.limit // 2:
            self._hand_out()
        try:
            await turn.event.wait()
        finally:
            if not turn.event.is_set():  # cancelled (the connection closed): leave the queue
                self._waiting.remove(turn)
        return turn.share


class _Turn:
    """One waiting reader: woken with the number of requests it may queue."""

    __slots__ = ("event", "share")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.share = 0


class ClientConnection:
    """State of one ZooKeeper client connection over any byte stream."""

    _ids = itertools.count(1)

    def __init__(self, stream: trio.abc.Stream, address: str, limit: OutstandingLimit) -> None:
        self.id = next(self._ids)
        self.stream = stream
        self.address = address
        self.session_id = 0
        self.timeout_ms = 0
        self.identities: list[tuple[str, str]] = [("ip", address)]
        self.queue: deque[Slot] = deque()
        self.out: list[bytes] = []
        self.out_bytes = 0  # queued in `out`, not yet handed to the stream
        self.flushed = trio.Event()  # set each time `out` is handed to the stream
        self.wake = trio.Event()
        self.room = trio.Event()
        self.closing = False
        # Cancelled by `close`: a reader waiting for its turn under the outstanding limit
        # must notice the close, or its queued requests would hold the limit forever.
        self.turn_scope: trio.CancelScope | None = None
        self.pending_writes = 0
        self.received = 0
        self.sent = 0
        self.connected_at = time.monotonic()
        self.last_zxid = 0
        self.limit = limit

    def enqueue(self, slot: Slot) -> None:
        self.queue.append(slot)
        self.limit.add()

    def push(self, data: bytes) -> None:
        self.out.append(data)
        self.out_bytes += len(data)
        self.sent += 1
        self.wake.set()

    async def wait_for_reader(self, max_bytes: int) -> None:
        """Wait while more than `max_bytes` of replies wait for a client that does not read
        them, so a slow reader cannot make us buffer without bound."""
        while self.out_bytes > max_bytes and not self.closing:
            self.flushed = trio.Event()
            await self.flushed.wait()

    def answer_ready(self, max_outstanding: int) -> None:
        """Send queued replies in order, evaluating reads once they reach the head."""
        queue = self.queue
        answered = 0
        while queue:
            head = queue[0]
            if not head.done:
                if head.compute is None:
                    break  # a write still in flight
                head.reply = head.compute()
                head.done = True
            queue.popleft()
            answered += 1
            assert head.reply is not None
            self.push(head.reply)
        if answered:
            self.limit.remove(answered)
        if len(queue) < max_outstanding:
            self.room.set()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.wake.set()
        self.room.set()
        self.flushed.set()
        if self.turn_scope is not None:
            self.turn_scope.cancel()

    def release(self) -> None:
        """The connection is gone: its unanswered requests no longer count."""
        if self.queue:
            self.limit.remove(len(self.queue))
            self.queue.clear()

    async def write_loop(self, on_send: Callable[[], None]) -> None:
        """Send what `push` queued, batched, until closed and flushed; `on_send` counts each
        batch handed to the stream."""
        while True:
            while not self.out:
                if self.closing:
                    # Everything queued is flushed: closing the stream also wakes the reader
                    # blocked in receive_some, so the client sees the close at once.
                    await self.stream.aclose()
                    return
                self.wake = trio.Event()
                await self.wake.wait()
            batch = b"".join(self.out)
            self.out.clear()
            await self.stream.send_all(batch)
            self.out_bytes -= len(batch)
            self.flushed.set()
            on_send()
