"""A TCP proxy between one client and one controller, to break connections on purpose.

- `cut()`: close every proxied connection now (the client sees connection loss and comes
  back through the proxy with its session).
- `block()` / `unblock()`: cut, and refuse new connections meanwhile (accept and close at
  once), so the client stays disconnected: after the session timeout the quorum expires the
  session, which the client learns on its next connection.
- `cut_before_next_reply()`: let requests through, but cut the connection instead of
  forwarding the next reply to a request (xid > 0): the request is applied by the quorum and
  its reply lost, the case protected creation exists for.
"""

from __future__ import annotations

import trio

from controller.node.config import Address


class _Cut(Exception):
    pass


class Proxy:
    def __init__(self, upstream: Address) -> None:
        self.upstream = upstream
        self.blocked = False
        self.cuts = 0
        self._armed = False
        self._connections: set[trio.CancelScope] = set()
        self.port = 0

    @property
    def address(self) -> Address:
        return Address("127.0.0.1", self.port)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started()

    def cut(self) -> None:
        self.cuts += 1
        for scope in list(self._connections):
            scope.cancel()

    def block(self) -> None:
        self.blocked = True
        self.cut()

    def unblock(self) -> None:
        self.blocked = False

    def cut_before_next_reply(self) -> None:
        self._armed = True

    async def _handle(self, downstream: trio.SocketStream) -> None:
        if self.blocked:
            await downstream.aclose()
            return
        try:
            upstream = await trio.open_tcp_stream(self.upstream.host, self.upstream.port)
        except OSError:
            await downstream.aclose()
            return
        with trio.CancelScope() as scope:
            self._connections.add(scope)
            try:
                async with downstream, upstream, trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, downstream, upstream, scope, False)
                    nursery.start_soon(self._pump, upstream, downstream, scope, True)
            except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError, _Cut):
                pass
            finally:
                self._connections.discard(scope)

    async def _pump(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        scope: trio.CancelScope,
        replies: bool,
    ) -> None:
        buffer = b""
        first = True  # the connect response is not a reply to a request
        while True:
            data = await source.receive_some(65536)
            if not data:
                scope.cancel()
                return
            if not replies:
                await sink.send_all(data)
                continue
            buffer += data
            out = b""
            while len(buffer) >= 4:
                size = int.from_bytes(buffer[:4], "big", signed=True)
                if len(buffer) < 4 + size:
                    break
                frame, buffer = buffer[: 4 + size], buffer[4 + size :]
                if first:
                    first = False
                elif self._armed and int.from_bytes(frame[4:8], "big", signed=True) > 0:
                    self._armed = False
                    if out:
                        await sink.send_all(out)
                    self.cuts += 1
                    scope.cancel()
                    return
                out += frame
            if out:
                await sink.send_all(out)
