"""A minimal blocking ZooKeeper wire client for compatibility tests.

kazoo validates arguments on the client side and hides the wire (null buffers, exact opcodes,
error codes, extra frames), so the tests that compare answers byte for byte against real
ZooKeeper talk jute directly through this.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from typing import Any

import attrs

from controller.zk.constants import XID_NOTIFICATION
from controller.zk.jute import JuteError, Reader
from controller.zk.protocol import (
    ClientFramer,
    ConnectedEvent,
    ReplyEvent,
    decode_response,
    encode_connect_request,
    encode_request,
)
from controller.zk.records import ACL, AuthPacket, ConnectRequest, ConnectResponse, Id, WatcherEvent

OPEN = [ACL(31, Id("world", "anyone"))]


@attrs.frozen
class Reply:
    """One reply: error code, the server's zxid and the decoded body (None on error)."""

    err: int
    zxid: int
    body: Any


class ConnectionClosed(Exception):
    """The server closed the connection."""


def connect(server: str, retry_for: float = 30.0) -> RawClient:
    """A connected client; like any client, retries a refused or closed handshake (a
    restarting server, an election)."""
    deadline = time.monotonic() + retry_for
    while True:
        try:
            return RawClient(server)
        except (ConnectionClosed, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class RawClient:
    """One session on one server; requests are answered in order (xids 1, 2, ...)."""

    def __init__(self, server: str, timeout_ms: int = 10000, io_timeout: float = 15.0) -> None:
        host, _, port = server.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=io_timeout)
        self.framer = ClientFramer()
        self.events: list[WatcherEvent] = []
        self.unexpected: list[ReplyEvent] = []
        self._xid = 0
        self.sock.sendall(
            encode_connect_request(ConnectRequest(0, 0, timeout_ms, 0, b"\0" * 16, False))
        )
        event = self._next()
        assert isinstance(event, ConnectedEvent), event
        self.session: ConnectResponse = event.response

    def _next(self) -> ConnectedEvent | ReplyEvent:
        while True:
            event = self.framer.next_event()
            if event is not None:
                return event
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionClosed
            self.framer.feed(data)

    def send_raw(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def call(self, op: int, record: Any = None) -> Reply:
        """Send one request and wait for its reply (notifications seen meanwhile go to
        `events`, any other frame to `unexpected`)."""
        self._xid += 1
        xid = self._xid
        self.sock.sendall(encode_request(xid, op, record))
        while True:
            event = self._next()
            assert isinstance(event, ReplyEvent)
            if event.header.xid == XID_NOTIFICATION:
                self.events.append(WatcherEvent.read(Reader(event.body)))
                continue
            if event.header.xid != xid:
                self.unexpected.append(event)
                continue
            body: Any = None
            if event.header.err == 0:
                try:
                    body = decode_response(op, event.body)
                except JuteError:
                    body = event.body  # not decodable as UTF-8 (ZooKeeper writes CESU-8)
            return Reply(event.header.err, event.header.zxid, body)

    def add_auth(self, scheme: str, credential: bytes) -> int:
        """addauth (xid -4); returns the error code of its reply."""
        self.sock.sendall(encode_request(-4, 100, AuthPacket(0, scheme, credential)))
        while True:
            event = self._next()
            assert isinstance(event, ReplyEvent)
            if event.header.xid == -4:
                return event.header.err
            if event.header.xid == XID_NOTIFICATION:
                self.events.append(WatcherEvent.read(Reader(event.body)))
            else:
                self.unexpected.append(event)

    def ping(self) -> None:
        """A round trip that flushes whatever the server sent before it."""
        self.sock.sendall(struct.pack(">iii", 8, -2, 11))
        while True:
            event = self._next()
            assert isinstance(event, ReplyEvent)
            if event.header.xid == -2:
                return
            if event.header.xid == XID_NOTIFICATION:
                self.events.append(WatcherEvent.read(Reader(event.body)))
            else:
                self.unexpected.append(event)

    def is_closed(self, wait: float = 2.0) -> bool:
        """True if the server closes the connection within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            return not self.sock.recv(1 << 16)
        except TimeoutError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(encode_request(self._xid + 1, -11, None))
        self.sock.close()
