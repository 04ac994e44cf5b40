"""Our jute records against real ZooKeeper 3.8 traffic (tests/wire/golden_frames.json).

Every recorded frame, in both directions, must decode with our records and re-encode to the
very same bytes; a few decoded values are checked as well. The fixture is produced by
`python -m tests.wire.record_golden` (needs ZooKeeper); these tests need none.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from controller.zk.constants import Err, EventType, KeeperState, OpCode
from controller.zk.jute import Reader
from controller.zk.protocol import (
    decode_notification,
    decode_request,
    decode_response,
    encode_connect_request,
    encode_connect_response,
    encode_frame,
    encode_notification,
    encode_reply,
    encode_request,
    record_bytes,
)
from controller.zk.records import (
    BODYLESS_REQUESTS,
    RESPONSE_RECORDS,
    ClientInfo,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    CreateResponse,
    CreateTTLRequest,
    ErrorResponse,
    GetChildren2Response,
    GetDataResponse,
    MultiRequest,
    MultiResponse,
    ReplyHeader,
    RequestHeader,
    SetWatches,
    SetWatches2,
    WatcherEvent,
)

FIXTURE = pathlib.Path(__file__).with_name("golden_frames.json")
DOC: dict[str, Any] = json.loads(FIXTURE.read_text())
CONNECTIONS: list[dict[str, Any]] = DOC["connections"]
FRAMES: list[tuple[int, int, dict[str, Any]]] = [
    (c["connection"], i, f) for c in CONNECTIONS for i, f in enumerate(c["frames"])
]


def _frame_id(item: tuple[int, int, dict[str, Any]]) -> str:
    conn, index, frame = item
    return f"c{conn}-{index}-{frame['dir']}-{frame.get('op_name', frame['kind'])}"


def _payload(frame: dict[str, Any]) -> bytes:
    return bytes.fromhex(frame["hex"])


def _decode_reply_body(op: int, body: bytes) -> Any:
    if op == OpCode.NOTIFICATION:
        return decode_notification(body)
    return decode_response(op, body)


@pytest.mark.parametrize("item", FRAMES, ids=[_frame_id(f) for f in FRAMES])
def test_frame_round_trips(item: tuple[int, int, dict[str, Any]]) -> None:
    _, _, frame = item
    payload = _payload(frame)
    if frame["kind"] == "connect":
        if frame["dir"] == "c2s":
            request = ConnectRequest.read(Reader(payload))
            assert encode_connect_request(request) == encode_frame(payload)
        else:
            response = ConnectResponse.read(Reader(payload))
            assert encode_connect_response(response) == encode_frame(payload)
        return
    if frame["kind"] == "request":
        header = RequestHeader.read(Reader(payload))
        assert (header.xid, header.type) == (frame["xid"], frame["op"])
        assert record_bytes(header) == payload[:8]
        body = payload[8:]
        record = decode_request(header.type, body)
        if header.type in BODYLESS_REQUESTS:
            assert record is None and body == b""
        else:
            assert record_bytes(record) == body
        assert encode_request(header.xid, header.type, record) == encode_frame(payload)
        return
    reply = ReplyHeader.read(Reader(payload))
    assert (reply.xid, reply.err) == (frame["xid"], frame["err"])
    assert record_bytes(reply) == payload[:16]
    body = payload[16:]
    op = frame["op"]
    if not body:
        # No body: an error, or an op whose reply is the header alone.
        assert reply.err != 0 or op not in RESPONSE_RECORDS
        assert encode_reply(reply.xid, reply.zxid, reply.err, None) == encode_frame(payload)
        return
    record = _decode_reply_body(op, body)
    assert record is not None, f"no response record for op {op}"
    assert record_bytes(record) == body
    if op == OpCode.NOTIFICATION:
        event = encode_notification(record.type, record.state, record.path, reply.zxid)
        assert event == encode_frame(payload)
    else:
        assert reply.err == 0
        assert encode_reply(reply.xid, reply.zxid, reply.err, record) == encode_frame(payload)


# ---------------------------------------------------------------------- decoded values


def _exchanges() -> Iterator[tuple[int, int, Any, dict[str, Any]]]:
    """(connection, op, decoded request, reply frame) for every answered request."""
    for conn in CONNECTIONS:
        pending: dict[int, tuple[int, Any]] = {}
        for frame in conn["frames"]:
            if frame["kind"] == "request":
                body = _payload(frame)[8:]
                pending[frame["xid"]] = (frame["op"], decode_request(frame["op"], body))
            elif frame["kind"] == "reply" and frame["xid"] in pending:
                op, request = pending.pop(frame["xid"])
                yield conn["connection"], op, request, frame


def _reply(op: int, **match: Any) -> tuple[Any, ReplyHeader, Any]:
    """The (request, reply header, reply record) of the first `op` whose request matches."""
    for _, o, request, frame in _exchanges():
        if o == op and all(getattr(request, k) == v for k, v in match.items()):
            payload = _payload(frame)
            header = ReplyHeader.read(Reader(payload))
            body = payload[16:]
            return request, header, _decode_reply_body(op, body) if body else None
    raise AssertionError(f"no recorded {OpCode(op).name} matching {match}")


def _recorded_ops() -> set[tuple[str, int]]:
    return {(f["kind"], f["op"]) for _, _, f in FRAMES if "op" in f}


def test_coverage_of_recorded_ops() -> None:
    requests = {op for kind, op in _recorded_ops() if kind == "request"}
    wanted = {
        OpCode.CREATE,
        OpCode.CREATE2,
        OpCode.CREATE_CONTAINER,
        OpCode.CREATE_TTL,
        OpCode.DELETE,
        OpCode.EXISTS,
        OpCode.GET_DATA,
        OpCode.SET_DATA,
        OpCode.GET_ACL,
        OpCode.SET_ACL,
        OpCode.GET_CHILDREN,
        OpCode.GET_CHILDREN2,
        OpCode.SYNC,
        OpCode.PING,
        OpCode.MULTI,
        OpCode.MULTI_READ,
        OpCode.RECONFIG,
        OpCode.CHECK_WATCHES,
        OpCode.REMOVE_WATCHES,
        OpCode.AUTH,
        OpCode.SET_WATCHES,
        OpCode.SET_WATCHES2,
        OpCode.GET_EPHEMERALS,
        OpCode.GET_ALL_CHILDREN_NUMBER,
        OpCode.ADD_WATCH,
        OpCode.WHO_AM_I,
        OpCode.CLOSE_SESSION,
    }
    assert wanted <= requests, sorted(OpCode(op).name for op in wanted - requests)
    assert ("notification", OpCode.NOTIFICATION) in _recorded_ops()
    kinds = [f["kind"] for _, _, f in FRAMES]
    assert kinds.count("connect") >= 2 * 4


def test_connect_handshakes() -> None:
    first = CONNECTIONS[0]["frames"]
    request = ConnectRequest.read(Reader(_payload(first[0])))
    response = ConnectResponse.read(Reader(_payload(first[1])))
    assert request.session_id == 0 and request.protocol_version == 0
    assert request.read_only is False  # 45-byte form
    assert response.session_id != 0 and len(response.passwd) == 16
    assert response.read_only is False and response.timeout > 0
    # kazoo's reconnect (second connection) resumes the same session.
    resumed = ConnectRequest.read(Reader(_payload(CONNECTIONS[1]["frames"][0])))
    assert resumed.session_id == response.session_id
    assert resumed.passwd == response.passwd
    assert resumed.last_zxid_seen > 0


def test_null_and_empty_data_stay_apart() -> None:
    _, _, hello = _reply(OpCode.GET_DATA, path="/g/a")
    assert isinstance(hello, GetDataResponse)
    assert hello.data == b"hello" and hello.stat.data_length == 5
    assert hello.stat.ephemeral_owner != 0
    _, _, created = _reply(OpCode.CREATE2, path="/g/b")
    assert isinstance(created, Create2Response) and created.path == "/g/b"
    _, _, empty = _reply(OpCode.GET_DATA, path="/g/empty")
    assert empty.data == b"" and empty.stat.data_length == 0
    # Null buffers (length -1) sent by the raw client: create and setData with None.
    create_null, _, _ = _reply(OpCode.CREATE, path="/r")
    assert create_null.data is None
    set_null, header, stat = _reply(OpCode.SET_DATA, path="/r/ttl")
    assert set_null.data is None and header.err == 0
    assert stat.stat.data_length == 0


def test_error_replies_are_header_only() -> None:
    _, header, body = _reply(OpCode.GET_DATA, path="/g/missing")
    assert header.err == Err.NONODE and body is None
    _, header, body = _reply(OpCode.RECONFIG)
    assert header.err == Err.RECONFIGDISABLED and body is None


def test_values_of_lists_acls_and_counts() -> None:
    _, _, children = _reply(OpCode.GET_CHILDREN2, path="/g")
    assert isinstance(children, GetChildren2Response)
    assert {"a", "b", "empty", "u"} <= set(children.children)
    assert children.stat.num_children == len(children.children)
    _, _, acls = _reply(OpCode.GET_ACL, path="/g/u")
    assert [(a.perms, a.id.scheme) for a in acls.acl] == [(31, "digest")]
    assert acls.acl[0].id.id.startswith("alice:")
    _, _, ephemerals = _reply(OpCode.GET_EPHEMERALS, prefix_path="/r")
    assert ephemerals.ephemerals == ["/r/e"]
    _, _, nothing = _reply(OpCode.GET_EPHEMERALS, prefix_path="/nothing")
    assert nothing.ephemerals == []
    _, _, total = _reply(OpCode.GET_ALL_CHILDREN_NUMBER, path="/r")
    assert total.total_number >= 5
    _, _, ttl = _reply(OpCode.CREATE_TTL, path="/r/ttl")
    assert isinstance(ttl, Create2Response) and ttl.path == "/r/ttl"
    request, header, _ = _reply(OpCode.CREATE_TTL, path="/r/bad")
    assert isinstance(request, CreateTTLRequest) and request.ttl == 60000
    assert header.err == Err.BADARGUMENTS


def test_who_am_i() -> None:
    answers = [
        _decode_reply_body(op, _payload(frame)[16:])
        for _, op, _, frame in _exchanges()
        if op == OpCode.WHO_AM_I
    ]
    assert len(answers) == 2
    assert [c.auth_scheme for c in answers[0].client_info] == ["ip"]
    assert ClientInfo("digest", "bob") in answers[1].client_info


def test_multi_results() -> None:
    ok = [
        (request, _decode_reply_body(op, _payload(frame)[16:]))
        for _, op, request, frame in _exchanges()
        if op == OpCode.MULTI and frame["err"] == 0 and len(frame["hex"]) > 32
    ]
    request, response = ok[0]
    assert isinstance(request, MultiRequest) and isinstance(response, MultiResponse)
    assert [op for op, _ in request.ops] == [1, 5, 13, 2]
    assert [t for t, _, _ in response.results] == [1, 5, 13, 2]
    # The failed transaction: every result is an error, the check's is BADVERSION.
    failed = [
        response for request, response in ok if any(err != 0 for _, err, _ in response.results)
    ]
    assert len(failed) == 1
    results = failed[0].results
    assert all(t == OpCode.ERROR for t, _, _ in results)
    assert [rec.err for _, _, rec in results] == [err for _, err, _ in results]
    assert Err.BADVERSION in [err for _, err, _ in results]
    assert [err for _, err, _ in results] == [0, Err.BADVERSION, Err.RUNTIMEINCONSISTENCY]
    # create2 / container / TTL inside a multi: ZooKeeper 3.8 answers create2 as a plain
    # CREATE result (path only), container and TTL creates as CREATE2 (path and stat).
    mixed = next(r for q, r in ok if any(op == OpCode.CREATE_TTL for op, _ in q.ops))
    assert [t for t, _, _ in mixed.results] == [1, 15, 15, 13]
    assert [type(rec) for _, _, rec in mixed.results][:3] == [
        CreateResponse,
        Create2Response,
        Create2Response,
    ]
    empty = [r for q, r in ok if not q.ops]
    assert empty == [] or empty[0].results == []


def test_multi_read_results() -> None:
    (_, _, request, frame) = next(e for e in _exchanges() if e[1] == OpCode.MULTI_READ)
    response = _decode_reply_body(OpCode.MULTI_READ, _payload(frame)[16:])
    assert [op for op, _ in request.ops] == [4, 8, 4, 4]
    types = [t for t, _, _ in response.results]
    assert types == [OpCode.GET_DATA, OpCode.GET_CHILDREN, OpCode.ERROR, OpCode.GET_DATA]
    assert response.results[0][2].data == b"eph"
    assert response.results[2][2] == ErrorResponse(Err.NONODE)
    assert response.results[3][2].data is None  # "/r" was created with null data


def test_watches_and_notifications() -> None:
    events = [
        WatcherEvent.read(Reader(_payload(f)[16:]))
        for _, _, f in FRAMES
        if f["kind"] == "notification"
    ]
    assert all(e.state == KeeperState.SYNC_CONNECTED for e in events)
    seen = {(e.type, e.path) for e in events}
    assert (EventType.NODE_DATA_CHANGED, "/g/a") in seen
    assert (EventType.NODE_CHILDREN_CHANGED, "/g") in seen
    assert (EventType.NODE_CREATED, "/r/new") in seen  # persistent recursive watch on /r
    set_watches = [
        decode_request(f["op"], _payload(f)[8:])
        for _, _, f in FRAMES
        if f["kind"] == "request" and f["xid"] == -8
    ]
    sw = next(s for s in set_watches if isinstance(s, SetWatches))
    assert sw.data_watches == ["/r/e", "/r/ttl"] and sw.child_watches == ["/r"]
    assert sw.relative_zxid > 0
    sw2 = next(s for s in set_watches if isinstance(s, SetWatches2))
    assert sw2.persistent_recursive_watches == ["/"]


def test_reply_ops_have_response_records() -> None:
    """Every successful recorded reply with a body maps to a response record."""
    for kind, op in _recorded_ops():
        if kind == "reply" and op not in BODYLESS_REQUESTS:
            assert op in RESPONSE_RECORDS or op in (
                OpCode.DELETE,
                OpCode.AUTH,
                OpCode.SET_WATCHES,
                OpCode.SET_WATCHES2,
                OpCode.CHECK_WATCHES,
                OpCode.REMOVE_WATCHES,
                OpCode.RECONFIG,
            ), OpCode(op).name
