"""Peer frame codec: roundtrips, framing limits and malformed input."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller import limits
from controller.raft.messages import (
    MESSAGE_TYPES,
    AppendRequest,
    AppendResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    SnapshotRequest,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from controller.raft.types import Entry, EntryKind, SnapshotMeta, make_zxid
from controller.wire.peer_codec import (
    PEER_FRAME_TYPES,
    FrameDecoder,
    Hello,
    PeerFrame,
    PeerProtocolError,
    decode_body,
    encode_frame,
)

META = SnapshotMeta(index=900, term=4, zxid=make_zxid(4, 17), voters=(1, 2, 3), observers=(9,))
ENTRIES = (
    *(Entry(5, 100 + i, make_zxid(5, i), k, bytes([i]) * i) for i, k in enumerate(EntryKind)),
    Entry(5, 200, make_zxid(5, 100), EntryKind.COMMAND, b""),
)

FRAMES: list[PeerFrame] = [
    Hello(cluster_id="kraft-ü", node_id=3, client_address="127.0.0.1:9093"),
    VoteRequest(7, 1, 2, last_index=44, last_term=6, pre_vote=True, transfer=False),
    VoteResponse(7, 2, 1, granted=True, pre_vote=True),
    VoteResponse(8, 2, 1, granted=False),
    AppendRequest(5, 1, 2, prev_index=99, prev_term=5, entries=ENTRIES, commit=98),
    AppendRequest(5, 1, 3, prev_index=0, prev_term=0, entries=(), commit=0),
    AppendResponse(5, 2, 1, success=False, match_index=0, hint_index=40, hint_term=3),
    HeartbeatRequest(5, 1, 2, commit=1 << 40),
    HeartbeatResponse(5, 2, 1, last_index=123),
    SnapshotRequest(5, 1, 2, meta=META, offset=4096, chunk=bytes(range(256)) * 3, done=False),
    SnapshotRequest(5, 1, 2, meta=SnapshotMeta(1, 1, 1, (1,)), offset=0, chunk=b"", done=True),
    SnapshotResponse(5, 2, 1, index=900, next_offset=8192, done=False, success=False),
    TimeoutNow(9, 1, 3),
]


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _decode_all(data: bytes, step: int | None = None) -> list[PeerFrame]:
    dec = FrameDecoder()
    out: list[PeerFrame] = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        dec.feed(chunk)
        while (frame := dec.next_frame()) is not None:
            out.append(frame)
    assert dec.buffered == 0
    return out


def test_every_frame_type_is_covered() -> None:
    assert (Hello, *MESSAGE_TYPES) == PEER_FRAME_TYPES
    assert {type(f) for f in FRAMES} == set(PEER_FRAME_TYPES)


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: type(f).__name__)
def test_roundtrip_byte_by_byte(frame: PeerFrame) -> None:
    data = encode_frame(frame)
    assert struct.unpack(">I", data[:4])[0] == len(data) - 4
    assert decode_body(data[4:]) == frame
    assert _decode_all(data, step=1) == [frame]


def test_roundtrip_many_frames_in_one_chunk_and_odd_chunks() -> None:
    data = b"".join(encode_frame(f) for f in FRAMES)
    assert _decode_all(data) == FRAMES
    assert _decode_all(data, step=7) == FRAMES
    assert _decode_all(data, step=1) == FRAMES


def test_decoded_entries_have_their_types() -> None:
    append = next(f for f in FRAMES if isinstance(f, AppendRequest) and f.entries)
    got = decode_body(encode_frame(append)[4:])
    assert isinstance(got, AppendRequest)
    assert isinstance(got.entries, tuple)
    for entry in got.entries:
        assert type(entry) is Entry
        assert type(entry.kind) is EntryKind
        assert type(entry.data) is bytes
    assert [e.kind for e in got.entries][:3] == list(EntryKind)


def test_large_append_roundtrip() -> None:
    entries = tuple(
        Entry(2, i, make_zxid(2, i), EntryKind.COMMAND, i.to_bytes(4, "big") * 25)
        for i in range(1, limits.MAX_APPEND_ENTRIES + 1)
    )
    msg = AppendRequest(2, 1, 2, 0, 0, entries, limits.MAX_APPEND_ENTRIES)
    assert _decode_all(encode_frame(msg) * 3, step=65536) == [msg] * 3


def test_encode_refuses_oversized_frame() -> None:
    chunk = bytes(limits.MAX_PEER_FRAME_BYTES)
    with pytest.raises(ValueError, match="MAX_PEER_FRAME_BYTES"):
        encode_frame(SnapshotRequest(1, 1, 2, META, 0, chunk, True))


def test_oversized_length_rejected_as_soon_as_header_arrives() -> None:
    dec = FrameDecoder()
    dec.feed(struct.pack(">I", limits.MAX_PEER_FRAME_BYTES + 1)[:3])
    assert dec.next_frame() is None
    dec.feed(struct.pack(">I", limits.MAX_PEER_FRAME_BYTES + 1)[3:])
    with pytest.raises(PeerProtocolError, match="exceeds"):
        dec.next_frame()


def test_custom_limit_and_exact_limit() -> None:
    frame = encode_frame(TimeoutNow(1, 2, 3))
    assert _decode_all(frame) == [TimeoutNow(1, 2, 3)]
    dec = FrameDecoder(max_frame_bytes=len(frame) - 4)
    dec.feed(frame)
    assert dec.next_frame() == TimeoutNow(1, 2, 3)
    dec = FrameDecoder(max_frame_bytes=len(frame) - 5)
    dec.feed(frame[:4])
    with pytest.raises(PeerProtocolError):
        dec.next_frame()


def test_decoder_waits_for_the_whole_body() -> None:
    data = encode_frame(HeartbeatRequest(1, 1, 2, 5))
    dec = FrameDecoder()
    dec.feed(data[:-1])
    assert dec.next_frame() is None
    assert dec.next_frame() is None
    dec.feed(data[-1:])
    assert dec.next_frame() == HeartbeatRequest(1, 1, 2, 5)
    assert dec.next_frame() is None


def test_decoder_compacts_its_buffer() -> None:
    data = encode_frame(HeartbeatResponse(1, 2, 1, 10))
    dec = FrameDecoder()
    for _ in range(1000):
        dec.feed(data + data[:3])
        assert dec.next_frame() == HeartbeatResponse(1, 2, 1, 10)
        assert dec.next_frame() is None
        dec.feed(data[3:])
        assert dec.next_frame() == HeartbeatResponse(1, 2, 1, 10)
    assert dec.buffered == 0
    assert len(dec._buf) < 4 * len(data)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x92\x01",  # truncated array
        b"\x92\x01\x80\x00",  # trailing garbage
        b"\xde\xff\xff",  # truncated map
        msgpack.packb(5),
        msgpack.packb([1]),
        msgpack.packb([1, {}, 3]),
        msgpack.packb({"a": 1}),
        msgpack.packb([{1: 2}, 1]),
    ],
)
def test_garbage_body(body: bytes) -> None:
    with pytest.raises(PeerProtocolError):
        decode_body(body)
    dec = FrameDecoder()
    dec.feed(_frame(body))
    with pytest.raises(PeerProtocolError):
        dec.next_frame()


@pytest.mark.parametrize("tag", [len(PEER_FRAME_TYPES), 99, -1, 1 << 40, "1", 1.0, True, None])
def test_unknown_tag(tag: Any) -> None:
    fields = {"term": 1, "src": 1, "dst": 2}
    with pytest.raises(PeerProtocolError, match="tag"):
        decode_body(msgpack.packb([tag, fields]))


def _body(frame: PeerFrame, **changes: Any) -> bytes:
    tag, fields = msgpack.unpackb(encode_frame(frame)[4:], use_list=True)
    for key, value in changes.items():
        if value is _DELETE:
            del fields[key]
        else:
            fields[key] = value
    return bytes(msgpack.packb([tag, fields], use_bin_type=True))


_DELETE = object()
_HELLO = Hello("c", 1, "h:1")
_APPEND = next(f for f in FRAMES if isinstance(f, AppendRequest) and f.entries)
_SNAP = next(f for f in FRAMES if isinstance(f, SnapshotRequest))


@pytest.mark.parametrize(
    ("frame", "changes"),
    [
        (_HELLO, {"node_id": "1"}),
        (_HELLO, {"node_id": 1.0}),
        (_HELLO, {"cluster_id": b"c"}),
        (_HELLO, {"client_address": None}),
        (_HELLO, {"node_id": _DELETE}),
        (_HELLO, {"extra": 1}),
        (TimeoutNow(1, 2, 3), {"term": [1]}),
        (TimeoutNow(1, 2, 3), {"term": None}),
        (VoteResponse(1, 2, 3, True), {"granted": 1}),
        (VoteResponse(1, 2, 3, True), {"granted": "yes"}),
        (VoteRequest(1, 2, 3, 4, 5), {"pre_vote": None}),
        (VoteRequest(1, 2, 3, 4, 5), {"term": True}),
        (_SNAP, {"chunk": "text"}),
        (_SNAP, {"chunk": [1, 2]}),
        (_SNAP, {"meta": [1, 2, 3]}),
        (_SNAP, {"meta": {"index": 1, "term": 1, "zxid": 1, "voters": "abc"}}),
        (_SNAP, {"meta": {"index": 1, "term": 1, "zxid": 1}}),
        (_APPEND, {"entries": None}),
        (_APPEND, {"entries": [[1], [2], [3], [4], [b""]]}),  # unknown kind
        (_APPEND, {"entries": [[1, 2], [2], [3], [1], [b""]]}),  # ragged columns
        (_APPEND, {"entries": [[1], [2], [3], [7], [b""]]}),  # unknown kind
        (_APPEND, {"entries": [[1], [2], [3], [1], ["text"]]}),  # data not bytes
        (_APPEND, {"entries": [[1], [2], ["3"], [1], [b""]]}),
        (_APPEND, {"entries": [[1], [2], [3], [True], [b""]]}),
        (_APPEND, {"entries": [[1], [2], [3], [1]]}),  # missing column
        (_APPEND, {"entries": [[1, 2, 3, 1, b""]]}),  # row layout
        (_APPEND, {"entries": {"a": 1}}),
        (_APPEND, {"entries": 5}),
        (_APPEND, {"commit": _DELETE}),
    ],
)
def test_wrong_fields(frame: PeerFrame, changes: dict[str, Any]) -> None:
    body = _body(frame, **changes)
    with pytest.raises(PeerProtocolError, match=type(frame).__name__):
        decode_body(body)


def test_defaults_may_be_omitted() -> None:
    body = _body(VoteResponse(1, 2, 3, True, pre_vote=False), pre_vote=_DELETE)
    assert decode_body(body) == VoteResponse(1, 2, 3, True)


def _drain(data: bytes, step: int) -> None:
    dec = FrameDecoder(max_frame_bytes=1 << 16)
    try:
        for i in range(0, max(len(data), 1), step):
            dec.feed(data[i : i + step])
            while dec.next_frame() is not None:
                pass
    except PeerProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.integers(min_value=1, max_value=64))
def test_random_bytes_never_crash(data: bytes, step: int) -> None:
    _drain(data, step)
    # Also with a plausible length header so the body parser sees the bytes.
    _drain(_frame(data), step)


_msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.sampled_from(["term", "src", "dst", "entries", "meta", "chunk", "node_id"]),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-1, max_value=len(PEER_FRAME_TYPES)), _msgpack_values)
def test_random_structures_never_crash(tag: int, fields: Any) -> None:
    body = msgpack.packb([tag, fields], use_bin_type=True)
    try:
        frame = decode_body(body)
    except PeerProtocolError:
        return
    assert type(frame) in PEER_FRAME_TYPES
    assert decode_body(encode_frame(frame)[4:]) == frame


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            Entry,
            st.integers(0, 1 << 31),
            st.integers(0, 1 << 62),
            st.integers(0, (1 << 63) - 1),
            st.sampled_from(EntryKind),
            st.binary(max_size=64),
        ),
        max_size=20,
    ),
    st.integers(min_value=1, max_value=50),
)
def test_append_property_roundtrip(entries: list[Entry], step: int) -> None:
    msg = AppendRequest(3, 1, 2, 7, 2, tuple(entries), 5)
    data = encode_frame(msg) + encode_frame(TimeoutNow(3, 1, 2))
    assert _decode_all(data, step=step) == [msg, TimeoutNow(3, 1, 2)]
