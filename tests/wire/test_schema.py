"""The declarative record schema and the opcode tables: consistency and null handling."""

from __future__ import annotations

import struct
from typing import Any

import attrs
import pytest

from controller.zk import records
from controller.zk.constants import OpCode
from controller.zk.jute import JuteError, Reader, Writer
from controller.zk.records import (
    ACL,
    BODYLESS_REQUESTS,
    MULTI_READ_OPS,
    MULTI_REQUEST_RECORDS,
    MULTI_RESPONSE_RECORDS,
    MULTI_WRITE_OPS,
    REQUEST_RECORDS,
    RESPONSE_RECORDS,
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    GetChildrenResponse,
    GetDataResponse,
    Id,
    MultiHeader,
    MultiRequest,
    MultiResponse,
    ReconfigRequest,
    ReplyHeader,
    SetDataRequest,
    Stat,
    WatcherEvent,
)
from controller.zk.schema import (
    BOOL,
    BUFFER,
    BYTES,
    INT,
    LONG,
    OPT_USTRING,
    PATH,
    SCHEMAS,
    TRAILING_BOOL,
    USTRING,
    FieldType,
    JuteRecord,
    Kind,
    Vector,
    fields_of,
)

RECORD_CLASSES = sorted(
    (
        obj
        for obj in vars(records).values()
        if isinstance(obj, type) and issubclass(obj, JuteRecord) and obj is not JuteRecord
    ),
    key=lambda c: c.__name__,
)
DECLARED = sorted(SCHEMAS, key=lambda c: c.__name__)
HAND_WRITTEN = {MultiRequest, MultiResponse}
NOT_REQUESTS = {OpCode.NOTIFICATION, OpCode.ERROR, OpCode.CREATE_SESSION}


def _bytes(record: Any) -> bytes:
    w = Writer()
    record.write(w)
    return w.getvalue()


# ---------------------------------------------------------------------- tables


def test_every_request_opcode_has_a_record() -> None:
    for op in OpCode:
        if op in NOT_REQUESTS:
            assert op not in REQUEST_RECORDS and op not in BODYLESS_REQUESTS
            continue
        assert (op in REQUEST_RECORDS) != (op in BODYLESS_REQUESTS), op.name


def test_tables_are_keyed_by_opcode() -> None:
    for table in (REQUEST_RECORDS, RESPONSE_RECORDS, MULTI_REQUEST_RECORDS):
        assert all(type(op) is OpCode for op in table)
    assert all(type(op) is OpCode for op in MULTI_RESPONSE_RECORDS)
    assert all(type(op) is OpCode for op in BODYLESS_REQUESTS)


def test_responses_only_for_requests() -> None:
    for op in RESPONSE_RECORDS:
        assert op in REQUEST_RECORDS or op in BODYLESS_REQUESTS, op


def test_multi_op_table() -> None:
    assert set(MULTI_REQUEST_RECORDS) == MULTI_WRITE_OPS | MULTI_READ_OPS
    assert not MULTI_WRITE_OPS & MULTI_READ_OPS
    for op, cls in MULTI_REQUEST_RECORDS.items():
        assert cls is REQUEST_RECORDS[op], op.name  # type: ignore[attr-defined]
    assert OpCode.MULTI not in MULTI_REQUEST_RECORDS  # no nesting
    for op, cls in MULTI_RESPONSE_RECORDS.items():
        if op == OpCode.ERROR:
            assert cls is records.ErrorResponse
        else:
            assert op in MULTI_REQUEST_RECORDS
            assert cls is RESPONSE_RECORDS[op], op


def test_int_keys_find_opcode_entries() -> None:
    assert REQUEST_RECORDS[5] is SetDataRequest
    assert MULTI_REQUEST_RECORDS.get(15) is CreateRequest


# ---------------------------------------------------------------------- schema


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=[c.__name__ for c in RECORD_CLASSES])
def test_every_record_is_declared(cls: type[JuteRecord]) -> None:
    attributes = [a.name for a in attrs.fields(cls)]  # type: ignore[arg-type]
    if cls in HAND_WRITTEN:
        assert cls not in SCHEMAS
        return
    assert [f.name for f in fields_of(cls)] == attributes


def test_declared_types() -> None:
    def kinds(cls: type[JuteRecord]) -> list[FieldType]:
        return [f.type for f in fields_of(cls)]

    assert kinds(CreateRequest) == [PATH, BUFFER, Vector(ACL), INT]
    assert kinds(ACL) == [INT, Id]
    assert kinds(Stat) == [LONG] * 4 + [INT] * 3 + [LONG, INT, INT, LONG]
    assert kinds(ConnectRequest) == [INT, LONG, INT, LONG, BYTES, TRAILING_BOOL]
    assert kinds(ReconfigRequest) == [OPT_USTRING] * 3 + [LONG]
    assert kinds(GetChildrenResponse) == [Vector(USTRING)]
    assert kinds(MultiHeader) == [INT, BOOL, INT]
    assert kinds(WatcherEvent) == [INT, INT, USTRING]


def _sample(t: FieldType, seed: int) -> Any:
    if isinstance(t, Vector):
        return [_sample(t.item, seed + i) for i in range(seed % 3)]
    if not isinstance(t, Kind):
        return _instance(t, seed)
    return {
        INT: -seed,
        LONG: (1 << 40) + seed,
        BOOL: bool(seed % 2),
        BUFFER: None if seed % 3 == 0 else b"b" * (seed % 3 - 1),
        BYTES: b"\x00\xff" * (seed % 2),
        USTRING: "" if seed % 2 else f"s{seed}é",
        OPT_USTRING: None if seed % 2 else f"o{seed}",
        PATH: f"/p/{seed}",
        TRAILING_BOOL: None if seed % 3 == 0 else bool(seed % 3 - 1),
    }[t]


def _instance(cls: type[JuteRecord], seed: int) -> Any:
    return cls(*(_sample(f.type, seed + i) for i, f in enumerate(fields_of(cls))))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cls", DECLARED, ids=[c.__name__ for c in DECLARED])
def test_declared_records_round_trip(cls: type[JuteRecord], seed: int) -> None:
    record = _instance(cls, seed)
    data = _bytes(record)
    r = Reader(data)
    assert cls.read(r) == record
    assert r.remaining == 0
    # Any truncation is a JuteError (the trailing boolean excepted: it is optional).
    for cut in range(len(data)):
        if cut == len(data) - 1 and fields_of(cls)[-1].type is TRAILING_BOOL:
            continue
        with pytest.raises(JuteError):
            cls.read(Reader(data[:cut]))


# ---------------------------------------------------------------------- null vs empty


def test_buffers_keep_null_apart_from_empty() -> None:
    stat = Stat(*range(11))
    null = _bytes(GetDataResponse(None, stat))
    empty = _bytes(GetDataResponse(b"", stat))
    assert null[:4] == b"\xff\xff\xff\xff" and empty[:4] == b"\x00\x00\x00\x00"
    assert GetDataResponse.read(Reader(null)).data is None
    assert GetDataResponse.read(Reader(empty)).data == b""
    request = SetDataRequest("/a", None, -1)
    assert SetDataRequest.read(Reader(_bytes(request))) == request


def test_null_strings_and_vectors_read_as_empty() -> None:
    null = b"\xff\xff\xff\xff"
    assert records.CreateResponse.read(Reader(null)).path == ""
    assert GetChildrenResponse.read(Reader(null)).children == []
    assert records.AuthPacket.read(Reader(struct.pack(">i", 0) + null + null)).auth == b""
    assert ReconfigRequest.read(Reader(null * 3 + bytes(8))).new_members is None
    assert _bytes(ReconfigRequest(None, "", None, 1)) == null + bytes(4) + null + bytes(7) + b"\1"
    # Writers write None as null, as before.
    assert _bytes(GetChildrenResponse(None)) == null  # type: ignore[arg-type]


def test_null_path_is_refused() -> None:
    with pytest.raises(JuteError, match="null path"):
        records.GetACLRequest.read(Reader(b"\xff\xff\xff\xff"))


def test_bad_utf8_path_is_replaced() -> None:
    body = struct.pack(">i", 3) + b"/\xff\xfe" + b"\x01"
    assert records.ExistsRequest.read(Reader(body)).path == "/\ufffd\ufffd"


def test_trailing_read_only_flag() -> None:
    short = ConnectRequest(0, 5, 3000, 0, b"\0" * 16)
    assert len(_bytes(short)) == 44
    assert ConnectRequest.read(Reader(_bytes(short))).read_only is None
    full = ConnectResponse(0, 3000, 7, b"p" * 16, True)
    assert _bytes(full)[-1:] == b"\x01"
    assert ConnectResponse.read(Reader(_bytes(full))) == full


def test_fixed_runs_are_structs() -> None:
    assert _bytes(ReplyHeader(-1, 2, -101)) == struct.pack(">iqi", -1, 2, -101)
    assert len(_bytes(Stat(*range(11)))) == 68
    with pytest.raises(JuteError, match="truncated Stat"):
        Stat.read(Reader(bytes(67)))
    # A nonzero boolean byte reads as True.
    assert MultiHeader.read(Reader(struct.pack(">ibi", 1, 7, 0))).done is True


def test_multi_round_trip_and_unknown_op() -> None:
    acl = [ACL(31, Id("world", "anyone"))]
    multi = MultiRequest([(OpCode.CREATE, CreateRequest("/x", None, acl, 0))])
    data = _bytes(multi)
    assert data.endswith(struct.pack(">i?i", -1, True, -1))
    assert MultiRequest.read(Reader(data)) == multi
    bad = struct.pack(">i?i", OpCode.SYNC, False, -1) + data
    with pytest.raises(JuteError, match="not allowed in multi"):
        MultiRequest.read(Reader(bad))
    with pytest.raises(JuteError):
        MultiRequest.read(Reader(data[:-1]))
    response = MultiResponse([(2, 0, None), (-1, -101, records.ErrorResponse(-101))])
    assert MultiResponse.read(Reader(_bytes(response))) == response
