"""Jute records of the ZooKeeper protocol (zookeeper.jute), field order as on the wire.

Each record has `read(Reader)` and `write(Writer)`. Request paths are non-null strings; znode
data keeps the difference between a null buffer (None, length -1) and an empty one (b""), as
ZooKeeper does.
"""

from __future__ import annotations

import struct
from typing import Any, Self

import attrs

from controller.zk.jute import JuteError, Reader, Writer

_STAT = struct.Struct(">qqqqiiiqiiq")


@attrs.frozen(slots=True)
class Id:
    """An ACL identity: scheme and id."""

    scheme: str
    id: str

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.ustring() or "", r.ustring() or "")

    def write(self, w: Writer) -> None:
        w.ustring(self.scheme)
        w.ustring(self.id)


@attrs.frozen(slots=True)
class ACL:
    """Permissions for an identity."""

    perms: int
    id: Id

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.int(), Id.read(r))

    def write(self, w: Writer) -> None:
        w.int(self.perms)
        self.id.write(w)


def _read_acl(r: Reader) -> ACL:
    return ACL.read(r)


def _write_acl(w: Writer, acl: ACL) -> None:
    acl.write(w)


def _read_str(r: Reader) -> str:
    return r.ustring() or ""


def _write_str(w: Writer, s: str) -> None:
    w.ustring(s)


@attrs.frozen(slots=True)
class Stat:
    """Node metadata; 68 bytes on the wire, pzxid last."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    data_length: int
    num_children: int
    pzxid: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        if r.remaining < _STAT.size:
            raise JuteError("truncated Stat")
        values = _STAT.unpack_from(r.data, r.pos)
        r.pos += _STAT.size
        return cls(*values)

    def write(self, w: Writer) -> None:
        w.raw(
            _STAT.pack(
                self.czxid,
                self.mzxid,
                self.ctime,
                self.mtime,
                self.version,
                self.cversion,
                self.aversion,
                self.ephemeral_owner,
                self.data_length,
                self.num_children,
                self.pzxid,
            )
        )


@attrs.frozen(slots=True)
class ConnectRequest:
    """Handshake request (no RequestHeader); `read_only` is None in the 44-byte form."""

    protocol_version: int
    last_zxid_seen: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool | None = None

    @classmethod
    def read(cls, r: Reader) -> Self:
        pv, last, timeout, sid = r.int(), r.long(), r.int(), r.long()
        passwd = r.buffer() or b""
        ro = r.bool() if r.remaining >= 1 else None
        return cls(pv, last, timeout, sid, passwd, ro)

    def write(self, w: Writer) -> None:
        w.int(self.protocol_version)
        w.long(self.last_zxid_seen)
        w.int(self.timeout)
        w.long(self.session_id)
        w.buffer(self.passwd)
        if self.read_only is not None:
            w.bool(self.read_only)


@attrs.frozen(slots=True)
class ConnectResponse:
    """Handshake reply; timeout 0 means the session is invalid or expired."""

    protocol_version: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool | None = None

    @classmethod
    def read(cls, r: Reader) -> Self:
        pv, timeout, sid = r.int(), r.int(), r.long()
        passwd = r.buffer() or b""
        ro = r.bool() if r.remaining >= 1 else None
        return cls(pv, timeout, sid, passwd, ro)

    def write(self, w: Writer) -> None:
        w.int(self.protocol_version)
        w.int(self.timeout)
        w.long(self.session_id)
        w.buffer(self.passwd)
        if self.read_only is not None:
            w.bool(self.read_only)


@attrs.frozen(slots=True)
class RequestHeader:
    """xid and opcode of a request."""

    xid: int
    type: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.int(), r.int())

    def write(self, w: Writer) -> None:
        w.int(self.xid)
        w.int(self.type)


@attrs.frozen(slots=True)
class ReplyHeader:
    """xid, last zxid and error code of a reply."""

    xid: int
    zxid: int
    err: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.int(), r.long(), r.int())

    def write(self, w: Writer) -> None:
        w.int(self.xid)
        w.long(self.zxid)
        w.int(self.err)


@attrs.frozen(slots=True)
class CreateRequest:
    """create / create2 / createContainer."""

    path: str
    data: bytes | None
    acl: list[ACL]
    flags: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.buffer(), r.vector(_read_acl) or [], r.int())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.buffer(self.data)
        w.vector(self.acl, _write_acl)
        w.int(self.flags)


@attrs.frozen(slots=True)
class CreateTTLRequest:
    """createTTL."""

    path: str
    data: bytes | None
    acl: list[ACL]
    flags: int
    ttl: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.buffer(), r.vector(_read_acl) or [], r.int(), r.long())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.buffer(self.data)
        w.vector(self.acl, _write_acl)
        w.int(self.flags)
        w.long(self.ttl)


@attrs.frozen(slots=True)
class DeleteRequest:
    """delete / deleteContainer."""

    path: str
    version: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.int())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.int(self.version)


@attrs.frozen(slots=True)
class CheckVersionRequest:
    """check."""

    path: str
    version: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.int())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.int(self.version)


@attrs.frozen(slots=True)
class ExistsRequest:
    """exists."""

    path: str
    watch: bool

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.bool())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.bool(self.watch)


@attrs.frozen(slots=True)
class GetDataRequest:
    """getData."""

    path: str
    watch: bool

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.bool())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.bool(self.watch)


@attrs.frozen(slots=True)
class GetChildrenRequest:
    """getChildren."""

    path: str
    watch: bool

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.bool())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.bool(self.watch)


@attrs.frozen(slots=True)
class GetChildren2Request:
    """getChildren2."""

    path: str
    watch: bool

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.bool())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.bool(self.watch)


@attrs.frozen(slots=True)
class SetDataRequest:
    """setData."""

    path: str
    data: bytes | None
    version: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.buffer(), r.int())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.buffer(self.data)
        w.int(self.version)


@attrs.frozen(slots=True)
class GetACLRequest:
    """getACL."""

    path: str

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)


@attrs.frozen(slots=True)
class SetACLRequest:
    """setACL."""

    path: str
    acl: list[ACL]
    version: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.vector(_read_acl) or [], r.int())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.vector(self.acl, _write_acl)
        w.int(self.version)


@attrs.frozen(slots=True)
class SyncRequest:
    """sync."""

    path: str

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)


@attrs.frozen(slots=True)
class GetEphemeralsRequest:
    """getEphemerals."""

    prefix_path: str

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path())

    def write(self, w: Writer) -> None:
        w.ustring(self.prefix_path)


@attrs.frozen(slots=True)
class GetAllChildrenNumberRequest:
    """getAllChildrenNumber."""

    path: str

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)


@attrs.frozen(slots=True)
class AuthPacket:
    """addauth (xid -4)."""

    type: int
    scheme: str
    auth: bytes

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.int(), r.ustring() or "", r.buffer() or b"")

    def write(self, w: Writer) -> None:
        w.int(self.type)
        w.ustring(self.scheme)
        w.buffer(self.auth)


@attrs.frozen(slots=True)
class SetWatches:
    """Re-arm watches after reconnecting (op 101, xid -8)."""

    relative_zxid: int
    data_watches: list[str]
    exist_watches: list[str]
    child_watches: list[str]

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(
            r.long(),
            r.vector(_read_str) or [],
            r.vector(_read_str) or [],
            r.vector(_read_str) or [],
        )

    def write(self, w: Writer) -> None:
        w.long(self.relative_zxid)
        for paths in (self.data_watches, self.exist_watches, self.child_watches):
            w.vector(paths, _write_str)


@attrs.frozen(slots=True)
class SetWatches2:
    """SetWatches plus persistent watches (op 105)."""

    relative_zxid: int
    data_watches: list[str]
    exist_watches: list[str]
    child_watches: list[str]
    persistent_watches: list[str]
    persistent_recursive_watches: list[str]

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.long(), *(r.vector(_read_str) or [] for _ in range(5)))

    def write(self, w: Writer) -> None:
        w.long(self.relative_zxid)
        for paths in (
            self.data_watches,
            self.exist_watches,
            self.child_watches,
            self.persistent_watches,
            self.persistent_recursive_watches,
        ):
            w.vector(paths, _write_str)


@attrs.frozen(slots=True)
class AddWatchRequest:
    """addWatch (persistent or persistent-recursive)."""

    path: str
    mode: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.int())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.int(self.mode)


@attrs.frozen(slots=True)
class RemoveWatchesRequest:
    """removeWatches / checkWatches."""

    path: str
    type: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.path(), r.int())

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        w.int(self.type)


@attrs.frozen(slots=True)
class ReconfigRequest:
    """reconfig (not supported; parsed to answer ZUNIMPLEMENTED cleanly)."""

    joining_servers: str | None
    leaving_servers: str | None
    new_members: str | None
    cur_config_id: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.ustring(), r.ustring(), r.ustring(), r.long())

    def write(self, w: Writer) -> None:
        w.ustring(self.joining_servers)
        w.ustring(self.leaving_servers)
        w.ustring(self.new_members)
        w.long(self.cur_config_id)


@attrs.frozen(slots=True)
class GetSASLRequest:
    """SASL token (not supported)."""

    token: bytes

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.buffer() or b"")

    def write(self, w: Writer) -> None:
        w.buffer(self.token)


# ---------------------------------------------------------------------- responses


@attrs.frozen(slots=True)
class CreateResponse:
    """Reply to create."""

    path: str

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.ustring() or "")

    def write(self, w: Writer) -> None:
        w.ustring(self.path)


@attrs.frozen(slots=True)
class Create2Response:
    """Reply to create2/createContainer/createTTL."""

    path: str
    stat: Stat

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.ustring() or "", Stat.read(r))

    def write(self, w: Writer) -> None:
        w.ustring(self.path)
        self.stat.write(w)


@attrs.frozen(slots=True)
class StatResponse:
    """Reply carrying one Stat (exists, setData, setACL, check)."""

    stat: Stat

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(Stat.read(r))

    def write(self, w: Writer) -> None:
        self.stat.write(w)


@attrs.frozen(slots=True)
class GetDataResponse:
    """Reply to getData."""

    data: bytes | None
    stat: Stat

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.buffer(), Stat.read(r))

    def write(self, w: Writer) -> None:
        w.buffer(self.data)
        self.stat.write(w)


@attrs.frozen(slots=True)
class GetACLResponse:
    """Reply to getACL."""

    acl: list[ACL]
    stat: Stat

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.vector(_read_acl) or [], Stat.read(r))

    def write(self, w: Writer) -> None:
        w.vector(self.acl, _write_acl)
        self.stat.write(w)


@attrs.frozen(slots=True)
class GetChildrenResponse:
    """Reply to getChildren."""

    children: list[str]

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.vector(_read_str) or [])

    def write(self, w: Writer) -> None:
        w.vector(self.children, _write_str)


@attrs.frozen(slots=True)
class GetChildren2Response:
    """Reply to getChildren2."""

    children: list[str]
    stat: Stat

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.vector(_read_str) or [], Stat.read(r))

    def write(self, w: Writer) -> None:
        w.vector(self.children, _write_str)
        self.stat.write(w)


@attrs.frozen(slots=True)
class SyncResponse:
    """Reply to sync."""

    path: str

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.ustring() or "")

    def write(self, w: Writer) -> None:
        w.ustring(self.path)


@attrs.frozen(slots=True)
class GetEphemeralsResponse:
    """Reply to getEphemerals."""

    ephemerals: list[str]

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.vector(_read_str) or [])

    def write(self, w: Writer) -> None:
        w.vector(self.ephemerals, _write_str)


@attrs.frozen(slots=True)
class GetAllChildrenNumberResponse:
    """Reply to getAllChildrenNumber."""

    total_number: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.int())

    def write(self, w: Writer) -> None:
        w.int(self.total_number)


@attrs.frozen(slots=True)
class ErrorResponse:
    """An error code as a record (multi results, addWatch)."""

    err: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.int())

    def write(self, w: Writer) -> None:
        w.int(self.err)


@attrs.frozen(slots=True)
class WatcherEvent:
    """A watch notification body (xid -1)."""

    type: int
    state: int
    path: str

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.int(), r.int(), r.ustring() or "")

    def write(self, w: Writer) -> None:
        w.int(self.type)
        w.int(self.state)
        w.ustring(self.path)


@attrs.frozen(slots=True)
class ClientInfo:
    """One authenticated identity (whoAmI)."""

    auth_scheme: str
    user: str

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.ustring() or "", r.ustring() or "")

    def write(self, w: Writer) -> None:
        w.ustring(self.auth_scheme)
        w.ustring(self.user)


@attrs.frozen(slots=True)
class WhoAmIResponse:
    """Reply to whoAmI."""

    client_info: list[ClientInfo]

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.vector(ClientInfo.read) or [])

    def write(self, w: Writer) -> None:
        w.vector(self.client_info, lambda w2, c: c.write(w2))


@attrs.frozen(slots=True)
class MultiHeader:
    """Precedes every op (and the terminator) of a multi request or response."""

    type: int
    done: bool
    err: int

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.int(), r.bool(), r.int())

    def write(self, w: Writer) -> None:
        w.int(self.type)
        w.bool(self.done)
        w.int(self.err)


_MULTI_OPS: dict[int, Any] = {
    1: CreateRequest,
    15: CreateRequest,
    19: CreateRequest,
    21: CreateTTLRequest,
    2: DeleteRequest,
    5: SetDataRequest,
    13: CheckVersionRequest,
    4: GetDataRequest,
    8: GetChildrenRequest,
}

_END = MultiHeader(-1, True, -1)


@attrs.frozen(slots=True)
class MultiRequest:
    """multi / multiRead: a list of (opcode, request record)."""

    ops: list[tuple[int, Any]]

    @classmethod
    def read(cls, r: Reader) -> Self:
        ops: list[tuple[int, Any]] = []
        while True:
            header = MultiHeader.read(r)
            if header.done:
                return cls(ops)
            record_cls = _MULTI_OPS.get(header.type)
            if record_cls is None:
                raise JuteError(f"op {header.type} not allowed in multi")
            ops.append((header.type, record_cls.read(r)))

    def write(self, w: Writer) -> None:
        for op, record in self.ops:
            MultiHeader(op, False, -1).write(w)
            record.write(w)
        _END.write(w)


_MULTI_RESULTS: dict[int, Any] = {
    1: CreateResponse,
    15: Create2Response,
    5: StatResponse,
    4: GetDataResponse,
    8: GetChildrenResponse,
    -1: ErrorResponse,
}


@attrs.frozen(slots=True)
class MultiResponse:
    """Results of a multi: (type, err, record or None) per op."""

    results: list[tuple[int, int, Any]]

    @classmethod
    def read(cls, r: Reader) -> Self:
        results: list[tuple[int, int, Any]] = []
        while True:
            header = MultiHeader.read(r)
            if header.done:
                return cls(results)
            record_cls = _MULTI_RESULTS.get(header.type)
            record = record_cls.read(r) if record_cls is not None else None
            results.append((header.type, header.err, record))

    def write(self, w: Writer) -> None:
        for op_type, err, record in self.results:
            MultiHeader(op_type, False, err).write(w)
            if record is not None:
                record.write(w)
        _END.write(w)
