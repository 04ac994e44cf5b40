"""The admin protocol on the client port (used by `kraft quorum status`, tests, benchmarks).

A connection starts with the 4-byte magic `krft` (which no ZooKeeper frame or four-letter
word starts with), then carries length-prefixed msgpack frames in both directions. Requests
may be pipelined; responses carry the request id and may come back out of order.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs
from cattrs.preconf.msgpack import make_converter

from controller import limits

MAGIC = b"krft"
_HEADER = struct.Struct(">I")
_converter = make_converter()


class AdminProtocolError(Exception):
    """Malformed admin frame."""


@attrs.frozen
class AdminRequest:
    """`status`, `put` (key, value: replicated write), `get` (key: local read),
    `propose` (value: raw entry, for benchmarks)."""

    id: int
    op: str
    key: str = ""
    value: bytes = b""


@attrs.frozen
class AdminResponse:
    """`ok` with a value/index/status, or an error (with the leader's address if known)."""

    id: int
    ok: bool
    error: str = ""
    value: bytes | None = None
    index: int = 0
    status: dict[str, Any] | None = None
    leader: str = ""


def encode(msg: AdminRequest | AdminResponse) -> bytes:
    body: bytes = _converter.dumps(msg)
    return _HEADER.pack(len(body)) + body


class AdminDecoder:
    """Incremental decoder for one direction of the admin protocol."""

    def __init__(self, cls: type[AdminRequest] | type[AdminResponse]) -> None:
        self._cls = cls
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> Any:
        if len(self._buf) < 4:
            return None
        (length,) = _HEADER.unpack_from(self._buf)
        if length > limits.MAX_ADMIN_FRAME_BYTES:
            raise AdminProtocolError(f"admin frame of {length} bytes exceeds the limit")
        if len(self._buf) < 4 + length:
            return None
        body = bytes(self._buf[4 : 4 + length])
        del self._buf[: 4 + length]
        try:
            return _converter.loads(body, self._cls)
        except Exception as exc:  # cattrs raises several exception types for bad input
            raise AdminProtocolError(f"malformed admin frame: {exc!r:.200}") from exc
