"""The admin protocol on the client port (used by `kraft quorum status`, tests, benchmarks).

A connection starts with the 4-byte magic `krft` (which no ZooKeeper frame or four-letter
word starts with), then carries length-prefixed msgpack frames in both directions. Requests
may be pipelined; responses carry the request id and may come back out of order.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs
import msgpack
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
    # Positional arrays rather than cattrs' dicts: one request per proposal makes this the
    # hottest codec in the benchmark, and arrays are several times cheaper to (un)pack.
    if type(msg) is AdminRequest:
        body = _packb((msg.id, msg.op, msg.key, msg.value))
    else:
        assert isinstance(msg, AdminResponse)
        body = _packb((msg.id, msg.ok, msg.error, msg.value, msg.index, msg.status, msg.leader))
    return _HEADER.pack(len(body)) + body


def _packb(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _check(cls: type, fields: tuple[Any, ...]) -> None:
    if cls is AdminRequest and len(fields) == 4:
        rid, op, key, value = fields
        if type(rid) is int and type(op) is str and type(key) is str and type(value) is bytes:
            return  # the common case, checked without the generic loop below
    spec = _FIELD_TYPES[cls]
    if len(fields) != len(spec):
        raise TypeError(f"{cls.__name__} needs {len(spec)} fields, got {len(fields)}")
    for name, kinds, value in zip(_FIELD_NAMES[cls], spec, fields, strict=True):
        if not isinstance(value, kinds) or (type(value) is bool and bool not in kinds):
            raise TypeError(f"{cls.__name__}.{name}: unexpected {type(value).__name__}")


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
            fields = msgpack.unpackb(body, use_list=False, raw=False)
            if type(fields) is not tuple:
                raise TypeError("admin frame must be an array")
            _check(self._cls, fields)
            if self._cls is AdminResponse and fields[5] is not None:
                fields = (*fields[:5], _converter.structure(fields[5], dict[str, Any]), fields[6])
            return self._cls(*fields)
        except Exception as exc:  # msgpack raises several exception types for bad input
            raise AdminProtocolError(f"malformed admin frame: {exc!r:.200}") from exc


_FIELD_TYPES: dict[type, tuple[tuple[type, ...], ...]] = {
    AdminRequest: ((int,), (str,), (str,), (bytes,)),
    AdminResponse: (
        (int,),
        (bool,),
        (str,),
        (bytes, type(None)),
        (int,),
        (dict, type(None)),
        (str,),
    ),
}
_FIELD_NAMES = {cls: [a.name for a in attrs.fields(cls)] for cls in _FIELD_TYPES}
