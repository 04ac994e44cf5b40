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


@attrs.frozen
class Forward:
    """A follower hands client writes to the leader of `term`: (seq, encoded service
    command) pairs, the seq naming the request on the follower (controller/coord/commands.py).
    A receiver that is not the leader of `term` refuses them (`ForwardFailed`)."""

    term: int
    commands: tuple[tuple[int, bytes], ...]


@attrs.frozen
class ForwardFailed:
    """The leader tells the origin at once that forwarded commands did not make it (it is
    not the leader of their term, or lost the entries with its leadership): the origin fails
    those requests with `err`, ZooKeeper's code (CONNECTIONLOSS: outcome unknown)."""

    seqs: tuple[int, ...]
    err: int


@attrs.frozen
class SessionTouch:
    """A follower tells the leader which client sessions showed activity."""

    session_ids: tuple[int, ...]


ServiceFrame = Forward | ForwardFailed | SessionTouch
SERVICE_FRAME_TYPES = (Forward, ForwardFailed, SessionTouch)
PeerFrame = Message | Hello | ServiceFrame
PEER_FRAME_TYPES: tuple[type, ...] = (Hello, *MESSAGE_TYPES, *SERVICE_FRAME_TYPES)
_TAG = {cls: tag for tag, cls in enumerate(PEER_FRAME_TYPES)}
_HEADER = struct.Struct(">I")


class PeerProtocolError(Exception):
    """The peer sent something that is not a valid frame; close the connection."""


_converter = make_converter()
_KINDS = {int(k): k for k in EntryKind}
_APPEND_TAG = _TAG[AppendRequest]
_packer = msgpack.Packer(use_bin_type=True)


def _structure_entry(raw: Any, _: type) -> Entry:
    term, index, zxid, kind, data = raw
    if not (type(term) is int and type(index) is int and type(zxid) is int):
        raise ValueError(f"bad entry {raw!r:.100}")
    if type(data) is not bytes:
        raise ValueError(f"bad entry data {raw!r:.100}")
    return Entry(term, index, zxid, _KINDS[kind], data)


_converter.register_structure_hook(Entry, _structure_entry)

EntryBlobCache = dict[tuple[int, int, int], bytes]
"""Packed entry arrays by (first index, last index, last term), shared by the AppendRequests
of one Ready: the same batch usually goes to every follower."""


def _encode_append(msg: AppendRequest, cache: EntryBlobCache | None) -> bytes:
    # AppendRequest is the hot path, so it has a positional layout:
    # [tag, [term, src, dst, prev_index, prev_term, commit, [entries...]]]. Entries are
    # NamedTuples, which msgpack packs as arrays directly.
    entries = msgpack.packb
    blob: bytes | None = None
    key = None
    if msg.entries and cache is not None:
        key = (msg.entries[0].index, msg.entries[-1].index, msg.entries[-1].term)
        blob = cache.get(key)
    if blob is None:
        blob = entries(msg.entries, use_bin_type=True)
        if key is not None and cache is not None:
            cache[key] = blob
    pk = _packer.pack
    return b"".join(
        (
            b"\x92",
            pk(_APPEND_TAG),
            b"\x97",
            pk(msg.term),
            pk(msg.src),
            pk(msg.dst),
            pk(msg.prev_index),
            pk(msg.prev_term),
            pk(msg.commit),
            blob,
        )
    )


def _decode_append(fields: Any) -> AppendRequest:
    term, src, dst, prev_index, prev_term, commit, raw_entries = fields
    if not all(type(v) is int for v in (term, src, dst, prev_index, prev_term, commit)):
        raise ValueError("bad AppendRequest header")
    kinds = _KINDS
    entries = tuple([Entry(t, i, z, kinds[k], d) for t, i, z, k, d in raw_entries])
    for e in entries:
        if type(e.index) is not int or type(e.data) is not bytes or type(e.zxid) is not int:
            raise ValueError(f"bad entry {e!r:.100}")
    return AppendRequest(term, src, dst, prev_index, prev_term, entries, commit)


def encode_frame(frame: PeerFrame, cache: EntryBlobCache | None = None) -> bytes:
    if type(frame) is AppendRequest:
        body = _encode_append(frame, cache)
    else:
        body = msgpack.packb((_TAG[type(frame)], _converter.unstructure(frame)), use_bin_type=True)
    if len(body) > limits.MAX_PEER_FRAME_BYTES:
        raise ValueError(f"frame of {len(body)} bytes exceeds the peer frame limit")
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> PeerFrame:
    try:
        tag, fields = msgpack.unpackb(body, raw=False, use_list=False)
        if type(tag) is not int or not 0 <= tag < len(PEER_FRAME_TYPES):
            raise ValueError(f"unknown frame tag {tag!r}")
        if tag == _APPEND_TAG:
            frame: PeerFrame = _decode_append(fields)
        else:
            frame = _converter.structure(fields, PEER_FRAME_TYPES[tag])
    except PeerProtocolError:
        raise
    except Exception as exc:  # msgpack and cattrs raise many types for malformed input
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
