"""Length-prefixed msgpack frames between controllers (sans-IO, h11 style).

A frame is `u32 big-endian length | body`, where body is msgpack of `[tag, fields]`: `tag`
comes from the fixed `PEER_FRAME_TYPES` table and `fields` is the cattrs unstructuring of
the frame. Pure: no sockets, no clock, no concurrency.

Entries are the hot path (an AppendRequest carries up to 4096 of them, tens of times per
second), so `tuple[Entry, ...]` has its own cattrs hooks instead of the per-element
machinery: entries travel column by column, `[terms, indexes, zxids, kinds, datas]`, which
is transposed, packed, unpacked and validated in bulk. A lone `Entry` is packed as the array
`[term, index, zxid, kind, data]`.

Structuring is strict: ints, bools, strs and bytes must have exactly that msgpack type
(cattrs' defaults would quietly coerce `"5"` to `5`), and unknown keys are rejected.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

import attrs
import msgpack
from cattrs.preconf.msgpack import make_converter

from controller import limits
from controller.raft.messages import MESSAGE_TYPES, Message
from controller.raft.types import Entry, EntryKind

__all__ = [
    "PEER_FRAME_TYPES",
    "FrameDecoder",
    "Hello",
    "PeerFrame",
    "PeerProtocolError",
    "decode_body",
    "encode_frame",
]


@attrs.frozen(slots=True)
class Hello:
    """First frame on every peer connection: which cluster and node is calling, and the
    address its clients use."""

    cluster_id: str
    node_id: int
    client_address: str


PeerFrame = Message | Hello

PEER_FRAME_TYPES: tuple[type, ...] = (Hello, *MESSAGE_TYPES)
"""Tag table: a frame's tag is its position here (Hello=0, then the Raft messages 1..9).
Append only: reordering breaks compatibility between versions."""

_TAG: dict[type, int] = {cls: tag for tag, cls in enumerate(PEER_FRAME_TYPES)}
_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size


class PeerProtocolError(Exception):
    """The peer sent bytes that are not a valid frame; the connection must be closed."""


# --- converter -------------------------------------------------------------------------

_converter = make_converter(forbid_extra_keys=True)
_KINDS: dict[int, EntryKind] = {int(k): k for k in EntryKind}


def _strict(expected: type) -> Any:
    def hook(value: Any, _: type) -> Any:
        if type(value) is not expected:
            raise TypeError(f"expected {expected.__name__}, got {type(value).__name__}")
        return value

    return hook


for _t in (int, bool, str, bytes):
    _converter.register_structure_hook(_t, _strict(_t))


def _entry_from_raw(raw: Any) -> Entry:
    term, index, zxid, kind, data = raw  # ValueError/TypeError on the wrong shape
    if (
        type(term) is not int
        or type(index) is not int
        or type(zxid) is not int
        or type(kind) is not int
        or type(data) is not bytes
    ):
        raise TypeError(f"malformed entry {raw!r:.100}")
    return Entry(term, index, zxid, _KINDS[kind], data)


def _unstructure_entry(entry: Entry) -> Any:
    # A NamedTuple is packed by msgpack as an array [term, index, zxid, kind, data];
    # EntryKind is an IntEnum, packed as an int.
    return entry


def _structure_entry(raw: Any, _: type) -> Entry:
    return _entry_from_raw(raw)


_EMPTY_COLUMNS: tuple[tuple[Any, ...], ...] = ((),) * len(Entry._fields)
_make_entry = functools.partial(tuple.__new__, Entry)  # C-level constructor, no Python frame


def _unstructure_entries(entries: tuple[Entry, ...]) -> Any:
    # Columnar: [terms, indexes, zxids, kinds, datas]. Transposing in C and packing five
    # flat arrays is about twice as fast as packing 4096 small arrays, both ways.
    return list(zip(*entries, strict=True)) or _EMPTY_COLUMNS


def _structure_entries(raw: Any, _: type) -> tuple[Entry, ...]:
    if type(raw) is not tuple or len(raw) != len(Entry._fields):
        raise TypeError(f"expected {len(Entry._fields)} entry columns, got {raw!r:.100}")
    terms, indexes, zxids, kinds, datas = raw
    count = len(terms)
    for column in raw:
        if type(column) is not tuple or len(column) != count:
            raise TypeError("entry columns must be arrays of equal length")
    if count == 0:
        return ()
    int_types = set(map(type, terms))
    int_types.update(map(type, indexes), map(type, zxids), map(type, kinds))
    if int_types != {int}:
        raise TypeError(f"entry term/index/zxid/kind must be ints, got {int_types}")
    if set(map(type, datas)) != {bytes}:
        raise TypeError("entry data must be bytes")
    try:
        enum_kinds = list(map(_KINDS.__getitem__, kinds))
    except KeyError as exc:
        raise ValueError(f"unknown entry kind {exc.args[0]!r}") from None
    return tuple(map(_make_entry, zip(terms, indexes, zxids, enum_kinds, datas, strict=True)))


_ENTRIES = tuple[Entry, ...]
_converter.register_unstructure_hook(Entry, _unstructure_entry)
_converter.register_structure_hook(Entry, _structure_entry)
_converter.register_unstructure_hook_func(lambda t: t == _ENTRIES, _unstructure_entries)
_converter.register_structure_hook_func(lambda t: t == _ENTRIES, _structure_entries)


# --- encoding --------------------------------------------------------------------------


def encode_frame(msg: PeerFrame) -> bytes:
    """Serialize one frame, length header included. Raises ValueError if the body would
    exceed `limits.MAX_PEER_FRAME_BYTES` (the receiver would reject it)."""
    tag = _TAG[type(msg)]
    body: bytes = msgpack.packb((tag, _converter.unstructure(msg)), use_bin_type=True)
    if len(body) > limits.MAX_PEER_FRAME_BYTES:
        raise ValueError(
            f"{type(msg).__name__} frame of {len(body)} bytes exceeds "
            f"MAX_PEER_FRAME_BYTES={limits.MAX_PEER_FRAME_BYTES}"
        )
    return _HEADER.pack(len(body)) + body


# --- decoding --------------------------------------------------------------------------


def decode_body(body: bytes | bytearray | memoryview) -> PeerFrame:
    """Parse one frame body (without its length header); PeerProtocolError if malformed."""
    try:
        decoded = msgpack.unpackb(body, raw=False, use_list=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types (ExtraData, StackError, ...)
        raise PeerProtocolError(f"invalid msgpack in peer frame: {exc!r:.200}") from exc
    if type(decoded) is not tuple or len(decoded) != 2:
        raise PeerProtocolError(f"peer frame is not a [tag, fields] pair: {decoded!r:.100}")
    tag, fields = decoded
    if type(tag) is not int or not 0 <= tag < len(PEER_FRAME_TYPES):
        raise PeerProtocolError(f"unknown peer frame tag {tag!r:.50}")
    cls = PEER_FRAME_TYPES[tag]
    if type(fields) is not dict:
        raise PeerProtocolError(f"{cls.__name__} fields are not a map: {fields!r:.100}")
    try:
        frame: PeerFrame = _converter.structure(fields, cls)
    except Exception as exc:  # cattrs validation groups, TypeError, ValueError, KeyError...
        raise PeerProtocolError(f"malformed {cls.__name__} frame: {exc!r:.200}") from exc
    return frame


class FrameDecoder:
    """Incremental sans-IO decoder: `feed(data)` whatever arrived, then call `next_frame()`
    until it returns None (more data needed). Raises PeerProtocolError on a bad frame, after
    which the connection is unusable."""

    def __init__(self, max_frame_bytes: int = limits.MAX_PEER_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes in _buf
        self._max = max_frame_bytes

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes; parsing happens in `next_frame`."""
        if self._pos and self._pos >= len(self._buf) // 2:
            # Consumed bytes are at least half the buffer: drop them (amortised linear).
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> PeerFrame | None:
        """The next complete frame, or None if more data is needed."""
        pos = self._pos
        avail = len(self._buf) - pos
        if avail < HEADER_SIZE:
            return None
        (length,) = _HEADER.unpack_from(self._buf, pos)
        if length > self._max:
            raise PeerProtocolError(
                f"peer frame of {length} bytes exceeds the limit of {self._max} bytes"
            )
        if avail < HEADER_SIZE + length:
            return None
        start = pos + HEADER_SIZE
        end = start + length
        self._pos = end
        with memoryview(self._buf) as view:
            body = bytes(view[start:end])
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        return decode_body(body)
