"""Framing and request/reply encoding of the ZooKeeper protocol (sans-IO, h11 style).

`ServerFramer` turns the bytes of one client connection into events: a four-letter word, the
ConnectRequest, then requests. `ClientFramer` does the same for a client. Encoders produce
complete length-prefixed frames.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import attrs

from controller.zk.constants import DEFAULT_MAX_BUFFER, FOUR_LETTER_WORDS, XID_NOTIFICATION
from controller.zk.jute import JuteError, Reader, Writer
from controller.zk.records import (
    BODYLESS_REQUESTS,
    REQUEST_RECORDS,
    RESPONSE_RECORDS,
    ConnectRequest,
    ConnectResponse,
    ReplyHeader,
    WatcherEvent,
)

_INT = struct.Struct(">i")
_REPLY_HEADER = struct.Struct(">iqi")
_REQUEST_HEADER = struct.Struct(">ii")

# The opcode tables live with the records (keyed by OpCode; plain ints find them too).
BODYLESS_OPS = BODYLESS_REQUESTS


class UnknownOpcode(Exception):
    """The request's opcode is not part of the protocol we serve."""

    def __init__(self, op: int) -> None:
        super().__init__(f"unknown opcode {op}")
        self.op = op


class FrameTooLarge(Exception):
    """A frame length is negative or above jute.maxbuffer."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"frame length {length} outside [0, {limit}] (jute.maxbuffer)")
        self.length = length
        self.limit = limit


def decode_request(op: int, body: bytes) -> Any:
    """The request record of `op` (None for bodyless ops). Trailing bytes are ignored, as
    ZooKeeper does; truncation raises JuteError."""
    if op in BODYLESS_OPS:
        return None
    cls = REQUEST_RECORDS.get(op)
    if cls is None:
        raise UnknownOpcode(op)
    return cls.read(Reader(body))


def decode_response(op: int, body: bytes) -> Any:
    cls = RESPONSE_RECORDS.get(op)
    if cls is None:
        return None
    return cls.read(Reader(body))


def decode_notification(body: bytes) -> WatcherEvent:
    return WatcherEvent.read(Reader(body))


def encode_frame(payload: bytes) -> bytes:
    return _INT.pack(len(payload)) + payload


def record_bytes(record: Any) -> bytes:
    """A jute record's serialized body (no length prefix, no header)."""
    w = Writer()
    record.write(w)
    return w.getvalue()


def encode_reply(xid: int, zxid: int, err: int, record: Any) -> bytes:
    """A framed reply; the body is sent only when err == 0 (clients read it only then)."""
    header = _REPLY_HEADER.pack(xid, zxid, err)
    if err == 0 and record is not None:
        body = record_bytes(record)
        return _INT.pack(16 + len(body)) + header + body
    return _INT.pack(16) + header


def encode_notification(event_type: int, state: int, path: str, zxid: int = -1) -> bytes:
    raw = path.encode("utf-8")
    payload = _REPLY_HEADER.pack(XID_NOTIFICATION, zxid, 0) + struct.pack(
        ">iii", event_type, state, len(raw)
    )
    return _INT.pack(len(payload) + len(raw)) + payload + raw


def encode_request(xid: int, op: int, record: Any) -> bytes:
    header = _REQUEST_HEADER.pack(xid, op)
    body = record_bytes(record) if record is not None else b""
    return _INT.pack(8 + len(body)) + header + body


def encode_connect_request(req: ConnectRequest) -> bytes:
    return encode_frame(record_bytes(req))


def encode_connect_response(resp: ConnectResponse) -> bytes:
    return encode_frame(record_bytes(resp))


# ---------------------------------------------------------------------- events


@attrs.frozen
class FourLetterWord:
    """The connection opened with a four-letter command."""

    word: bytes


@attrs.frozen
class ConnectEvent:
    """The handshake request."""

    request: ConnectRequest


@attrs.frozen
class RequestEvent:
    """One request: header fields and the undecoded body."""

    xid: int
    op: int
    body: bytes


@attrs.frozen
class ConnectedEvent:
    """(client side) the handshake reply."""

    response: ConnectResponse


@attrs.frozen
class ReplyEvent:
    """(client side) one reply or notification."""

    header: ReplyHeader
    body: bytes


class _Framer:
    def __init__(self, max_buffer: int) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max = max_buffer

    def feed(self, data: bytes) -> None:
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def _frame(self) -> bytes | None:
        avail = len(self._buf) - self._pos
        if avail < 4:
            return None
        (length,) = _INT.unpack_from(self._buf, self._pos)
        if length < 0 or length > self._max:
            raise FrameTooLarge(length, self._max)
        if avail < 4 + length:
            return None
        start = self._pos + 4
        self._pos = start + length
        return bytes(self._buf[start : start + length])


class ServerFramer(_Framer):
    """Server side of one connection (see module docstring)."""

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__(max_buffer)
        self._connected = False

    def next_event(self) -> FourLetterWord | ConnectEvent | RequestEvent | None:
        if not self._connected:
            if len(self._buf) - self._pos >= 4:
                head = bytes(self._buf[self._pos : self._pos + 4])
                if head in FOUR_LETTER_WORDS:
                    self._pos += 4
                    return FourLetterWord(head)
            frame = self._frame()
            if frame is None:
                return None
            if len(frame) not in (44, 45):
                raise JuteError(f"ConnectRequest of {len(frame)} bytes (expected 44 or 45)")
            self._connected = True
            return ConnectEvent(ConnectRequest.read(Reader(frame)))
        frame = self._frame()
        if frame is None:
            return None
        if len(frame) < 8:
            raise JuteError(f"request frame of {len(frame)} bytes")
        xid, op = _REQUEST_HEADER.unpack_from(frame)
        return RequestEvent(xid, op, frame[8:])


class ClientFramer(_Framer):
    """Client side of one connection."""

    def __init__(self, max_buffer: int = 64 << 20) -> None:
        super().__init__(max_buffer)
        self._connected = False

    def next_event(self) -> ConnectedEvent | ReplyEvent | None:
        frame = self._frame()
        if frame is None:
            return None
        if not self._connected:
            self._connected = True
            return ConnectedEvent(ConnectResponse.read(Reader(frame)))
        if len(frame) < 16:
            raise JuteError(f"reply frame of {len(frame)} bytes")
        xid, zxid, err = _REPLY_HEADER.unpack_from(frame)
        return ReplyEvent(ReplyHeader(xid, zxid, err), frame[16:])


# ---------------------------------------------------------------------- paths


# PathUtils refuses these Java chars. Java strings are UTF-16, so every character outside the
# BMP is a surrogate pair there (\ud800-\udfff): refused as well.
_BAD_CHARS = re.compile(
    "[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff\U00010000-\U0010ffff]"
)


def validate_path(path: str, *, sequential: bool = False) -> str | None:
    """ZooKeeper's PathUtils.validatePath: an error message, or None if valid. ZooKeeper
    applies it to create's final path and to setData, setACL and check; reads and delete
    only look the path up."""
    if sequential:
        path = path + "1"
    if not path:
        return "path must not be empty"
    if path[0] != "/":
        return "path must start with /"
    if len(path) == 1:
        return None
    if path[-1] == "/":
        return "path must not end with /"
    for segment in path[1:].split("/"):
        if not segment:
            return "empty node name"
        if segment in (".", ".."):
            return "relative paths are not allowed"
    bad = _BAD_CHARS.search(path)
    if bad is not None:
        return f"invalid character U+{ord(bad.group()):04X}"
    return None
