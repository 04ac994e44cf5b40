"""Pure pieces of the node: codecs, config parsing, the key/value machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.node.admin import (
    AdminDecoder,
    AdminProtocolError,
    AdminRequest,
    AdminResponse,
    encode,
)
from controller.node.codec import FrameDecoder, Hello, PeerProtocolError, encode_frame
from controller.node.config import ConfigError, NodeConfig
from controller.node.statemachine import KVCommand, KVStateMachine, encode_kv
from controller.raft.messages import (
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
from controller.raft.types import Entry, EntryKind, SnapshotMeta

FRAMES = [
    Hello("c", 1, "127.0.0.1:2181"),
    VoteRequest(3, 1, 2, 10, 2, pre_vote=True),
    VoteResponse(3, 2, 1, True, pre_vote=False),
    AppendRequest(
        3,
        1,
        2,
        9,
        2,
        tuple(Entry(3, 10 + i, (3 << 32) + i, kind, b"d" * i) for i, kind in enumerate(EntryKind)),
        9,
    ),
    AppendRequest(3, 1, 2, 9, 2, (), 9),
    AppendResponse(3, 2, 1, False, 9, 4, 2),
    HeartbeatRequest(3, 1, 2, 8),
    HeartbeatResponse(3, 2, 1, 12),
    SnapshotRequest(3, 1, 2, SnapshotMeta(5, 2, 7, (1, 2, 3), (4,)), 0, b"\x00" * 10, False),
    SnapshotResponse(3, 2, 1, 5, 10, False, True),
    TimeoutNow(3, 1, 2),
]


def test_peer_frames_roundtrip_in_one_chunk_and_byte_by_byte() -> None:
    blob = b"".join(encode_frame(f) for f in FRAMES)
    decoder = FrameDecoder()
    decoder.feed(blob)
    assert [decoder.next_frame() for _ in FRAMES] == FRAMES
    assert decoder.next_frame() is None
    decoder = FrameDecoder()
    out = []
    for byte in blob:
        decoder.feed(bytes([byte]))
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    assert out == FRAMES


def test_oversized_frame_is_refused_before_its_body_arrives() -> None:
    decoder = FrameDecoder(max_frame=1000)
    decoder.feed(b"\x00\x01\x00\x00")
    with pytest.raises(PeerProtocolError, match="exceeds"):
        decoder.next_frame()


@pytest.mark.parametrize(
    "body",
    [b"\xc1", b"\x92\x63\x80", b"\x92\x01\x80", b"\x92\x03\x97\x01\x01\x01\x01\x01\x01\x91\x01"],
)
def test_malformed_bodies_raise_protocol_errors(body: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(len(body).to_bytes(4, "big") + body)
    with pytest.raises(PeerProtocolError):
        decoder.next_frame()


@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_protocol_errors(data: bytes) -> None:
    decoder = FrameDecoder(max_frame=1 << 16)
    decoder.feed(data)
    try:
        while decoder.next_frame() is not None:
            pass
    except PeerProtocolError:
        pass


def test_admin_codec_roundtrip_and_rejects_wrong_shapes() -> None:
    dec = AdminDecoder(AdminRequest)
    req = AdminRequest(7, "put", "k", b"v")
    dec.feed(encode(req))
    assert dec.next() == req
    dec.feed(encode(AdminResponse(7, True)))
    with pytest.raises(AdminProtocolError):
        dec.next()
    resp_dec = AdminDecoder(AdminResponse)
    resp = AdminResponse(1, False, error="x", leader="h:1")
    resp_dec.feed(encode(resp))
    assert resp_dec.next() == resp


def test_kv_machine_snapshot_roundtrip() -> None:
    kv = KVStateMachine()
    for i in range(5):
        cmd = KVCommand("put", f"k{i}", bytes([i]))
        kv.apply(Entry(1, i + 1, i + 1, EntryKind.COMMAND, encode_kv(cmd)))
    delete = KVCommand("delete", "k0")
    assert kv.apply(Entry(1, 6, 6, EntryKind.COMMAND, encode_kv(delete))) == b"\x00"
    assert kv.apply(Entry(1, 7, 7, EntryKind.COMMAND, b"opaque")) is None
    copy = KVStateMachine()
    copy.restore(kv.snapshot())
    assert copy.data == kv.data == {f"k{i}": bytes([i]) for i in range(1, 5)}
    assert copy.applied_index == 7


def test_config_from_toml_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'node_id = 2\nvoters = ["1@h:1", "2@h:2", "3@h:3"]\nclient_port = 2182\n'
        'data_dir = "d"\nfsync = "never"\n'
    )
    cfg = NodeConfig.load(path)
    assert cfg.node_id == 2 and not cfg.fsync and cfg.raft_address.port == 2
    with pytest.raises(ConfigError, match="neither a voter"):
        NodeConfig.load(path, {"node_id": 9})
    path.write_text('node_id = 1\nvoters = ["1@nohostport"]\nclient_port = 1\ndata_dir = "d"\n')
    with pytest.raises(ConfigError, match="host:port"):
        NodeConfig.load(path)
    path.write_text('node_id = 1\nbogus = 3\nvoters = ["1@h:1"]\nclient_port = 1\ndata_dir="d"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        NodeConfig.load(path)
