"""On-disk record framing for log segments.

Each log entry is stored as one record, all integers big-endian::

    u32 length   number of bytes that follow this field (crc + header + data)
    u32 crc      crc32c of everything after the crc field (header + data)
    u64 term
    u64 index
    u64 zxid
    u8  kind     an EntryKind value
    ...data      the entry payload (length - 29 bytes)

A record is valid when its length is in range, it fits in the file, the crc matches and the
kind is known. Recovery uses `decode_at` to walk a segment and `find_valid_record` to decide
whether a bad record is a torn tail (nothing valid after it) or corruption in the middle.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import attrs
import crc32c

from controller import limits
from controller.raft.types import Entry, EntryKind

_PREFIX = struct.Struct(">II")  # length, crc
_HEADER = struct.Struct(">QQQB")  # term, index, zxid, kind
PREFIX_SIZE = _PREFIX.size
HEADER_SIZE = _HEADER.size
# Smallest legal `length` value: crc + header, empty payload.
MIN_LENGTH = 4 + HEADER_SIZE
# Generous upper bound so a garbage length field is recognised without reading far; every
# entry is bounded by the peer frame size anyway.
MAX_DATA_BYTES = limits.MAX_PEER_FRAME_BYTES
MAX_LENGTH = MIN_LENGTH + MAX_DATA_BYTES
_KINDS = frozenset(int(k) for k in EntryKind)


def encode_entries(
    entries: Sequence[Entry], parts: list[bytes], start: int = 0, budget: int | None = None
) -> tuple[int, int]:
    """Append framed records for `entries[start:]` to `parts`.

    Stops after the record that makes the encoded size reach `budget` (if given), so the
    caller can roll to a new segment. Returns (index in `entries` of the first record not
    encoded, bytes added). The caller joins `parts` once so an append is a single write.
    """
    pack_prefix = _PREFIX.pack
    pack_header = _HEADER.pack
    crc = crc32c.crc32c
    limit = -1 if budget is None else budget
    total = 0
    i = start
    n = len(entries)
    while i < n:
        e = entries[i]
        i += 1
        data = e.data
        size = len(data)
        if size > MAX_DATA_BYTES:
            raise ValueError(f"entry {e.index} payload of {size} bytes exceeds limit")
        header = pack_header(e.term, e.index, e.zxid, e.kind)
        parts.append(pack_prefix(MIN_LENGTH + size, crc(data, crc(header))))
        parts.append(header)
        parts.append(data)
        total += PREFIX_SIZE + HEADER_SIZE + size
        if total >= limit >= 0:
            break
    return i, total


def encode_entry(entry: Entry) -> bytes:
    """Frame a single entry (used by tests and tools)."""
    parts: list[bytes] = []
    encode_entries((entry,), parts)
    return b"".join(parts)


@attrs.frozen(slots=True)
class Decoded:
    """A successfully decoded record and the offset just past it."""

    entry: Entry
    end: int


@attrs.frozen(slots=True)
class Bad:
    """Why the record at some offset could not be decoded.

    `torn` means the record runs past the end of the buffer, which is what an interrupted
    write looks like.
    """

    reason: str
    torn: bool


def decode_at(buf: bytes | memoryview, pos: int) -> Decoded | Bad:
    """Decode the record starting at `pos` in `buf`."""
    size = len(buf)
    if size - pos < PREFIX_SIZE:
        return Bad(f"incomplete record prefix ({size - pos} bytes)", torn=True)
    length, crc = _PREFIX.unpack_from(buf, pos)
    if length < MIN_LENGTH or length > MAX_LENGTH:
        return Bad(f"invalid record length {length}", torn=False)
    end = pos + 4 + length
    if end > size:
        return Bad(f"record length {length} runs past end of file ({size} bytes)", torn=True)
    body = memoryview(buf)[pos + PREFIX_SIZE : end]
    actual = crc32c.crc32c(body)
    if actual != crc:
        return Bad(f"crc mismatch (stored {crc:#010x}, computed {actual:#010x})", torn=False)
    term, index, zxid, kind = _HEADER.unpack_from(body, 0)
    if kind not in _KINDS:
        return Bad(f"unknown entry kind {kind}", torn=False)
    data = bytes(body[HEADER_SIZE:])
    return Decoded(Entry(term=term, index=index, zxid=zxid, kind=EntryKind(kind), data=data), end)


def find_valid_record(buf: bytes | memoryview, start: int, min_index: int) -> int | None:
    """Offset of the first valid record at or after `start` whose index is >= `min_index`.

    Used only after a bad record has been found, to tell a torn tail (nothing valid follows:
    safe to cut) from corruption in the middle of the log (valid data follows: cutting it
    could silently drop acknowledged entries). Cheap checks run before the crc so garbage is
    skipped quickly.
    """
    size = len(buf)
    view = memoryview(buf)
    unpack_prefix = _PREFIX.unpack_from
    unpack_header = _HEADER.unpack_from
    for pos in range(start, size - PREFIX_SIZE - HEADER_SIZE + 1):
        length, crc = unpack_prefix(view, pos)
        if length < MIN_LENGTH or length > MAX_LENGTH or pos + 4 + length > size:
            continue
        _term, index, _zxid, kind = unpack_header(view, pos + PREFIX_SIZE)
        if kind not in _KINDS or index < min_index:
            continue
        if crc32c.crc32c(view[pos + PREFIX_SIZE : pos + 4 + length]) == crc:
            return pos
    return None
