"""Jute records of the ZooKeeper protocol (zookeeper.jute), declared field by field.

Each record is an attrs class whose annotations give the jute type of every field in wire
order; `@jute_record` (controller.zk.schema) generates its `read(Reader)` and
`write(Writer)`. Request paths are non-null strings (`Path`); znode data keeps the
difference between a null buffer (None, length -1) and an empty one (b""), as ZooKeeper
does (`Buffer`). The tables at the end map each `OpCode` to its request and response
records, for plain requests and for the operations of a multi.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Self, TypeAlias

import attrs

from controller.zk.constants import OpCode
from controller.zk.jute import JuteError, Reader, Writer
from controller.zk.schema import (
    Bool,
    Buffer,
    Bytes,
    Int32,
    Int64,
    JuteRecord,
    OptString,
    Path,
    String,
    Strings,
    TrailingBool,
    Vector,
    jute_record,
)

# ---------------------------------------------------------------------- data


@jute_record
@attrs.frozen(slots=True)
class Id(JuteRecord):
    """An ACL identity: scheme and id."""

    scheme: String
    id: String


@jute_record
@attrs.frozen(slots=True)
class ACL(JuteRecord):
    """Permissions for an identity."""

    perms: Int32
    id: Id


ACLs: TypeAlias = Annotated[list[ACL], Vector(ACL)]


@jute_record
@attrs.frozen(slots=True)
class Stat(JuteRecord):
    """Node metadata; 68 bytes on the wire (one struct), pzxid last."""

    czxid: Int64
    mzxid: Int64
    ctime: Int64
    mtime: Int64
    version: Int32
    cversion: Int32
    aversion: Int32
    ephemeral_owner: Int64
    data_length: Int32
    num_children: Int32
    pzxid: Int64


# ---------------------------------------------------------------------- session, headers


@jute_record
@attrs.frozen(slots=True)
class ConnectRequest(JuteRecord):
    """Handshake request (no RequestHeader); `read_only` is None in the 44-byte form."""

    protocol_version: Int32
    last_zxid_seen: Int64
    timeout: Int32
    session_id: Int64
    passwd: Bytes
    read_only: TrailingBool = None


@jute_record
@attrs.frozen(slots=True)
class ConnectResponse(JuteRecord):
    """Handshake reply; timeout 0 means the session is invalid or expired."""

    protocol_version: Int32
    timeout: Int32
    session_id: Int64
    passwd: Bytes
    read_only: TrailingBool = None


@jute_record
@attrs.frozen(slots=True)
class RequestHeader(JuteRecord):
    """xid and opcode of a request."""

    xid: Int32
    type: Int32


@jute_record
@attrs.frozen(slots=True)
class ReplyHeader(JuteRecord):
    """xid, last zxid and error code of a reply."""

    xid: Int32
    zxid: Int64
    err: Int32


@jute_record
@attrs.frozen(slots=True)
class MultiHeader(JuteRecord):
    """Precedes every op (and the terminator) of a multi request or response."""

    type: Int32
    done: Bool
    err: Int32


# ---------------------------------------------------------------------- requests


@jute_record
@attrs.frozen(slots=True)
class CreateRequest(JuteRecord):
    """create / create2 / createContainer."""

    path: Path
    data: Buffer
    acl: ACLs
    flags: Int32


@jute_record
@attrs.frozen(slots=True)
class CreateTTLRequest(JuteRecord):
    """createTTL."""

    path: Path
    data: Buffer
    acl: ACLs
    flags: Int32
    ttl: Int64


@jute_record
@attrs.frozen(slots=True)
class DeleteRequest(JuteRecord):
    """delete / deleteContainer."""

    path: Path
    version: Int32


@jute_record
@attrs.frozen(slots=True)
class CheckVersionRequest(JuteRecord):
    """check."""

    path: Path
    version: Int32


@jute_record
@attrs.frozen(slots=True)
class ExistsRequest(JuteRecord):
    """exists."""

    path: Path
    watch: Bool


@jute_record
@attrs.frozen(slots=True)
class GetDataRequest(JuteRecord):
    """getData."""

    path: Path
    watch: Bool


@jute_record
@attrs.frozen(slots=True)
class GetChildrenRequest(JuteRecord):
    """getChildren."""

    path: Path
    watch: Bool


@jute_record
@attrs.frozen(slots=True)
class GetChildren2Request(JuteRecord):
    """getChildren2."""

    path: Path
    watch: Bool


@jute_record
@attrs.frozen(slots=True)
class SetDataRequest(JuteRecord):
    """setData."""

    path: Path
    data: Buffer
    version: Int32


@jute_record
@attrs.frozen(slots=True)
class GetACLRequest(JuteRecord):
    """getACL."""

    path: Path


@jute_record
@attrs.frozen(slots=True)
class SetACLRequest(JuteRecord):
    """setACL."""

    path: Path
    acl: ACLs
    version: Int32


@jute_record
@attrs.frozen(slots=True)
class SyncRequest(JuteRecord):
    """sync."""

    path: Path


@jute_record
@attrs.frozen(slots=True)
class GetEphemeralsRequest(JuteRecord):
    """getEphemerals."""

    prefix_path: Path


@jute_record
@attrs.frozen(slots=True)
class GetAllChildrenNumberRequest(JuteRecord):
    """getAllChildrenNumber."""

    path: Path


@jute_record
@attrs.frozen(slots=True)
class AuthPacket(JuteRecord):
    """addauth (xid -4)."""

    type: Int32
    scheme: String
    auth: Bytes


@jute_record
@attrs.frozen(slots=True)
class SetWatches(JuteRecord):
    """Re-arm watches after reconnecting (op 101, xid -8)."""

    relative_zxid: Int64
    data_watches: Strings
    exist_watches: Strings
    child_watches: Strings


@jute_record
@attrs.frozen(slots=True)
class SetWatches2(JuteRecord):
    """SetWatches plus persistent watches (op 105)."""

    relative_zxid: Int64
    data_watches: Strings
    exist_watches: Strings
    child_watches: Strings
    persistent_watches: Strings
    persistent_recursive_watches: Strings


@jute_record
@attrs.frozen(slots=True)
class AddWatchRequest(JuteRecord):
    """addWatch (persistent or persistent-recursive)."""

    path: Path
    mode: Int32


@jute_record
@attrs.frozen(slots=True)
class RemoveWatchesRequest(JuteRecord):
    """removeWatches / checkWatches."""

    path: Path
    type: Int32


@jute_record
@attrs.frozen(slots=True)
class ReconfigRequest(JuteRecord):
    """reconfig (not supported; parsed to answer ZUNIMPLEMENTED cleanly)."""

    joining_servers: OptString
    leaving_servers: OptString
    new_members: OptString
    cur_config_id: Int64


@jute_record
@attrs.frozen(slots=True)
class GetSASLRequest(JuteRecord):
    """SASL token (not supported)."""

    token: Bytes


# ---------------------------------------------------------------------- responses


@jute_record
@attrs.frozen(slots=True)
class CreateResponse(JuteRecord):
    """Reply to create."""

    path: String


@jute_record
@attrs.frozen(slots=True)
class Create2Response(JuteRecord):
    """Reply to create2/createContainer/createTTL."""

    path: String
    stat: Stat


@jute_record
@attrs.frozen(slots=True)
class StatResponse(JuteRecord):
    """Reply carrying one Stat (exists, setData, setACL, check)."""

    stat: Stat


@jute_record
@attrs.frozen(slots=True)
class GetDataResponse(JuteRecord):
    """Reply to getData."""

    data: Buffer
    stat: Stat


@jute_record
@attrs.frozen(slots=True)
class GetACLResponse(JuteRecord):
    """Reply to getACL."""

    acl: ACLs
    stat: Stat


@jute_record
@attrs.frozen(slots=True)
class GetChildrenResponse(JuteRecord):
    """Reply to getChildren."""

    children: Strings


@jute_record
@attrs.frozen(slots=True)
class GetChildren2Response(JuteRecord):
    """Reply to getChildren2."""

    children: Strings
    stat: Stat


@jute_record
@attrs.frozen(slots=True)
class SyncResponse(JuteRecord):
    """Reply to sync."""

    path: String


@jute_record
@attrs.frozen(slots=True)
class GetEphemeralsResponse(JuteRecord):
    """Reply to getEphemerals."""

    ephemerals: Strings


@jute_record
@attrs.frozen(slots=True)
class GetAllChildrenNumberResponse(JuteRecord):
    """Reply to getAllChildrenNumber."""

    total_number: Int32


@jute_record
@attrs.frozen(slots=True)
class ErrorResponse(JuteRecord):
    """An error code as a record (multi results, addWatch)."""

    err: Int32


@jute_record
@attrs.frozen(slots=True)
class WatcherEvent(JuteRecord):
    """A watch notification body (xid -1)."""

    type: Int32
    state: Int32
    path: String


@jute_record
@attrs.frozen(slots=True)
class ClientInfo(JuteRecord):
    """One authenticated identity (whoAmI)."""

    auth_scheme: String
    user: String


@jute_record
@attrs.frozen(slots=True)
class WhoAmIResponse(JuteRecord):
    """Reply to whoAmI."""

    client_info: Annotated[list[ClientInfo], Vector(ClientInfo)]


# ---------------------------------------------------------------------- multi

# The operations a multi may carry (MultiOperationRecord), and the result record of each
# (MultiResponse); a failed op's result is an ErrorResponse under type ERROR (-1).
MULTI_WRITE_OPS = frozenset(
    {
        OpCode.CREATE,
        OpCode.CREATE2,
        OpCode.CREATE_CONTAINER,
        OpCode.CREATE_TTL,
        OpCode.DELETE,
        OpCode.SET_DATA,
        OpCode.CHECK,
    }
)
MULTI_READ_OPS = frozenset({OpCode.GET_DATA, OpCode.GET_CHILDREN})

MULTI_REQUEST_RECORDS: dict[int, type[JuteRecord]] = {
    OpCode.CREATE: CreateRequest,
    OpCode.CREATE2: CreateRequest,
    OpCode.CREATE_CONTAINER: CreateRequest,
    OpCode.CREATE_TTL: CreateTTLRequest,
    OpCode.DELETE: DeleteRequest,
    OpCode.SET_DATA: SetDataRequest,
    OpCode.CHECK: CheckVersionRequest,
    OpCode.GET_DATA: GetDataRequest,
    OpCode.GET_CHILDREN: GetChildrenRequest,
}

MULTI_RESPONSE_RECORDS: dict[int, type[JuteRecord]] = {
    OpCode.CREATE: CreateResponse,
    OpCode.CREATE2: Create2Response,
    OpCode.SET_DATA: StatResponse,
    OpCode.GET_DATA: GetDataResponse,
    OpCode.GET_CHILDREN: GetChildrenResponse,
    OpCode.ERROR: ErrorResponse,
}
"""Result bodies in a MultiResponse; other types (delete, check, createContainer and
createTTL, which ZooKeeper answers as CREATE or CREATE2 anyway) carry no body."""

_MULTI_HEADER = struct.Struct(">i?i")
_MULTI_END = _MULTI_HEADER.pack(-1, True, -1)


def _multi_header(r: Reader) -> tuple[int, bool, int]:
    pos = r.pos
    if pos + 9 > r.end:
        raise JuteError("truncated MultiHeader")
    r.pos = pos + 9
    header: tuple[int, bool, int] = _MULTI_HEADER.unpack_from(r.data, pos)
    return header


@attrs.frozen(slots=True)
class MultiRequest(JuteRecord):
    """multi / multiRead: a list of (opcode, request record), each after a MultiHeader,
    then a done header."""

    ops: list[tuple[int, Any]]

    @classmethod
    def read(cls, r: Reader) -> Self:
        ops: list[tuple[int, Any]] = []
        records = MULTI_REQUEST_RECORDS
        while True:
            op, done, _ = _multi_header(r)
            if done:
                return cls(ops)
            record_cls = records.get(op)
            if record_cls is None:
                raise JuteError(f"op {op} not allowed in multi")
            ops.append((op, record_cls.read(r)))

    def write(self, w: Writer) -> None:
        pack = _MULTI_HEADER.pack
        for op, request in self.ops:
            w.raw(pack(op, False, -1))
            request.write(w)
        w.raw(_MULTI_END)


@attrs.frozen(slots=True)
class MultiResponse(JuteRecord):
    """Results of a multi: (type, err, record or None) per op, then a done header."""

    results: list[tuple[int, int, Any]]

    @classmethod
    def read(cls, r: Reader) -> Self:
        results: list[tuple[int, int, Any]] = []
        records = MULTI_RESPONSE_RECORDS
        while True:
            op, done, err = _multi_header(r)
            if done:
                return cls(results)
            record_cls = records.get(op)
            results.append((op, err, record_cls.read(r) if record_cls is not None else None))

    def write(self, w: Writer) -> None:
        pack = _MULTI_HEADER.pack
        for op, err, result in self.results:
            w.raw(pack(op, False, err))
            if result is not None:
                result.write(w)
        w.raw(_MULTI_END)


# ---------------------------------------------------------------------- opcode tables

REQUEST_RECORDS: dict[int, type[JuteRecord]] = {
    OpCode.CREATE: CreateRequest,
    OpCode.CREATE2: CreateRequest,
    OpCode.CREATE_CONTAINER: CreateRequest,
    OpCode.CREATE_TTL: CreateTTLRequest,
    OpCode.DELETE: DeleteRequest,
    OpCode.DELETE_CONTAINER: DeleteRequest,
    OpCode.EXISTS: ExistsRequest,
    OpCode.GET_DATA: GetDataRequest,
    OpCode.SET_DATA: SetDataRequest,
    OpCode.GET_ACL: GetACLRequest,
    OpCode.SET_ACL: SetACLRequest,
    OpCode.GET_CHILDREN: GetChildrenRequest,
    OpCode.GET_CHILDREN2: GetChildren2Request,
    OpCode.SYNC: SyncRequest,
    OpCode.CHECK: CheckVersionRequest,
    OpCode.MULTI: MultiRequest,
    OpCode.MULTI_READ: MultiRequest,
    OpCode.AUTH: AuthPacket,
    OpCode.SET_WATCHES: SetWatches,
    OpCode.SET_WATCHES2: SetWatches2,
    OpCode.ADD_WATCH: AddWatchRequest,
    OpCode.CHECK_WATCHES: RemoveWatchesRequest,
    OpCode.REMOVE_WATCHES: RemoveWatchesRequest,
    OpCode.GET_EPHEMERALS: GetEphemeralsRequest,
    OpCode.GET_ALL_CHILDREN_NUMBER: GetAllChildrenNumberRequest,
    OpCode.RECONFIG: ReconfigRequest,
    OpCode.SASL: GetSASLRequest,
}
"""The body record of each request opcode (after the RequestHeader)."""

BODYLESS_REQUESTS = frozenset({OpCode.PING, OpCode.CLOSE_SESSION, OpCode.WHO_AM_I})
"""Requests that are a RequestHeader alone."""

RESPONSE_RECORDS: dict[int, type[JuteRecord]] = {
    OpCode.CREATE: CreateResponse,
    OpCode.CREATE2: Create2Response,
    OpCode.CREATE_CONTAINER: Create2Response,
    OpCode.CREATE_TTL: Create2Response,
    OpCode.EXISTS: StatResponse,
    OpCode.SET_DATA: StatResponse,
    OpCode.SET_ACL: StatResponse,
    OpCode.CHECK: StatResponse,
    OpCode.GET_DATA: GetDataResponse,
    OpCode.GET_ACL: GetACLResponse,
    OpCode.GET_CHILDREN: GetChildrenResponse,
    OpCode.GET_CHILDREN2: GetChildren2Response,
    OpCode.SYNC: SyncResponse,
    OpCode.MULTI: MultiResponse,
    OpCode.MULTI_READ: MultiResponse,
    OpCode.GET_EPHEMERALS: GetEphemeralsResponse,
    OpCode.GET_ALL_CHILDREN_NUMBER: GetAllChildrenNumberResponse,
    OpCode.ADD_WATCH: ErrorResponse,
    OpCode.WHO_AM_I: WhoAmIResponse,
}
"""The body record of a successful reply to each opcode (others have an empty body)."""
