"""Length-prefixed msgpack frames between controllers (sans-IO, h11 style).

A frame is `u32 big-endian length | msgpack([tag, fields])`, where `fields` is the cattrs
unstructuring of one of `PEER_FRAME_TYPES`. Entries are unstructured as compact lists
because AppendRequests carry thousands of them per second.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs
import msgpack
from cattrs.preconf.msgpack import make_converter

from controller import limits
from controller.raft.messages import MESSAGE_TYPES, AppendRequest, Message
from controller.raft.types import Entry, EntryKind


@attrs.frozen
class Hello:
    """First frame on every peer connection: who is calling, and their client address."""

    cluster_id: str
    node_id: int
    client_address: str


PeerFrame = Message | Hello
PEER_FRAME_TYPES: tuple[type, ...] = (Hello, *MESSAGE_TYPES)
_TAG = {cls: tag for tag, cls in enumerate(PEER_FRAME_TYPES)}
_HEADER = struct.Struct(">I")


class PeerProtocolError(Exception):
    """The peer sent something that is not a valid frame; close the connection."""


_converter = make_converter()
_converter.register_unstructure_hook(
    Entry, lambda e: (e.term, e.index, e.zxid, int(e.kind), e.data)
)


def _structure_entry(raw: Any, _: type) -> Entry:
    term, index, zxid, kind, data = raw
    if not (
        isinstance(term, int)
        and isinstance(index, int)
        and isinstance(zxid, int)
        and isinstance(data, bytes)
    ):
        raise ValueError(f"bad entry {raw!r}")
    return Entry(term, index, zxid, EntryKind(kind), data)


_converter.register_structure_hook(Entry, _structure_entry)


_KINDS = {int(k): k for k in EntryKind}


def _structure_append(fields: Any) -> AppendRequest:
    # Hot path: thousands of entries per frame; validated without cattrs' generic machinery.
    raw_entries = fields["entries"]
    entries = tuple([Entry(t, i, z, _KINDS[k], d) for t, i, z, k, d in raw_entries])
    for e in entries:
        if type(e.term) is not int or type(e.index) is not int or type(e.data) is not bytes:
            raise ValueError(f"bad entry {e!r:.100}")
    ints = [fields[k] for k in ("term", "src", "dst", "prev_index", "prev_term", "commit")]
    if any(type(v) is not int for v in ints):
        raise ValueError("bad AppendRequest header")
    term, src, dst, prev_index, prev_term, commit = ints
    return AppendRequest(term, src, dst, prev_index, prev_term, entries, commit)


def encode_frame(frame: PeerFrame) -> bytes:
    body: bytes = msgpack.packb(
        (_TAG[type(frame)], _converter.unstructure(frame)), use_bin_type=True
    )
    if len(body) > limits.MAX_PEER_FRAME_BYTES:
        raise ValueError(f"frame of {len(body)} bytes exceeds the peer frame limit")
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> PeerFrame:
    try:
        tag, fields = msgpack.unpackb(body, raw=False, use_list=False)
        if not isinstance(tag, int) or not 0 <= tag < len(PEER_FRAME_TYPES):
            raise ValueError(f"unknown frame tag {tag!r}")
        cls = PEER_FRAME_TYPES[tag]
        if cls is AppendRequest:
            frame: PeerFrame = _structure_append(fields)
        else:
            frame = _converter.structure(fields, cls)
    except (ValueError, TypeError, KeyError, IndexError, msgpack.UnpackException) as exc:
        raise PeerProtocolError(f"malformed peer frame: {exc!r:.200}") from exc
    except Exception as exc:  # cattrs wraps structuring errors in its own exception groups
        raise PeerProtocolError(f"malformed peer frame: {exc!r:.200}") from exc
    return frame


class FrameDecoder:
    """Incremental decoder: `feed(bytes)` then `next_frame()` until it returns None."""

    def __init__(self, max_frame: int = limits.MAX_PEER_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max = max_frame

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos > len(self._buf) // 2:
            del self._buf[: self._pos]  # compact, so consumed bytes do not pile up
            self._pos = 0
        self._buf += data

    def next_frame(self) -> PeerFrame | None:
        avail = len(self._buf) - self._pos
        if avail < 4:
            return None
        (length,) = _HEADER.unpack_from(self._buf, self._pos)
        if length > self._max:
            raise PeerProtocolError(f"frame of {length} bytes exceeds limit {self._max}")
        if avail < 4 + length:
            return None
        start = self._pos + 4
        body = bytes(self._buf[start : start + length])
        self._pos = start + length
        return decode_body(body)
