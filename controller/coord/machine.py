"""The coordination service's replicated state machine: data tree plus session table.

`apply(entry)` decodes a coordination command and executes it against the tree with the
entry's zxid and the command's time, returning an `Applied` result. Validation (paths,
versions, ACLs, sessions) happens here, at apply time, so it is deterministic and sees
exactly the state the log defines.
"""

from __future__ import annotations

from typing import Any

import attrs
import msgpack

from controller.coord import acl as acls
from controller.coord.commands import (
    COORD_PREFIX,
    Applied,
    Barrier,
    CloseSession,
    CreateSession,
    ExpireTTL,
    Write,
    decode_command,
)
from controller.coord.datatree import DataTree, WatchEvent, ZkError, Znode, parent_of
from controller.raft.types import Entry, EntryKind
from controller.zk.constants import CreateMode, Err, OpCode, Perm
from controller.zk.jute import JuteError
from controller.zk.protocol import UnknownOpcode, decode_request, validate_path
from controller.zk.records import (
    ACL,
    CheckVersionRequest,
    Create2Response,
    CreateRequest,
    CreateResponse,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    Id,
    MultiRequest,
    MultiResponse,
    SetACLRequest,
    SetDataRequest,
    StatResponse,
)

SESSION_ID_BITS = 56
# Plain ints: IntFlag arithmetic is slow on the per-write path.
_READ, _WRITE, _CREATE, _DELETE, _ADMIN = (int(p) for p in Perm if p is not Perm.ALL)
MULTI_OPS = {
    OpCode.CREATE,
    OpCode.CREATE2,
    OpCode.CREATE_CONTAINER,
    OpCode.CREATE_TTL,
    OpCode.DELETE,
    OpCode.SET_DATA,
    OpCode.CHECK,
}
WRITE_OPS = {
    *MULTI_OPS,
    OpCode.DELETE_CONTAINER,
    OpCode.SET_ACL,
    OpCode.MULTI,
}


# Opcodes as plain ints: enum member lookups are slow on the per-request path.
_OP_CHECK = int(OpCode.CHECK)
_OP_CREATE = int(OpCode.CREATE)
_OP_CREATE2 = int(OpCode.CREATE2)
_OP_CREATE_CONTAINER = int(OpCode.CREATE_CONTAINER)
_OP_CREATE_TTL = int(OpCode.CREATE_TTL)
_OP_DELETE = int(OpCode.DELETE)
_OP_DELETE_CONTAINER = int(OpCode.DELETE_CONTAINER)
_OP_MULTI = int(OpCode.MULTI)
_OP_SET_ACL = int(OpCode.SET_ACL)
_OP_SET_DATA = int(OpCode.SET_DATA)


@attrs.define
class Session:
    """A replicated session: its negotiated timeout and password."""

    session_id: int
    timeout_ms: int
    password: bytes


SNAPSHOT_FORMAT = 1


class CoordStateMachine:
    """Data tree + sessions; implements the node's `StateMachine` protocol."""

    def __init__(self, *, ttl_enabled: bool = True) -> None:
        self.tree = DataTree()
        self.sessions: dict[int, Session] = {}
        self.last_zxid = 0
        self.applied_index = 0
        self.ttl_enabled = ttl_enabled

    # ------------------------------------------------------------------ StateMachine

    def apply(self, entry: Entry) -> object:
        assert entry.kind is EntryKind.COMMAND
        self.applied_index = entry.index
        self.last_zxid = entry.zxid
        if not entry.data.startswith(COORD_PREFIX):
            return None  # not ours (e.g. a benchmark's opaque payload)
        cmd = decode_command(entry.data)
        if isinstance(cmd, Write):
            return self._apply_write(cmd, entry.zxid)
        if isinstance(cmd, CreateSession):
            session_id = self.session_id_for(cmd.origin, entry.index)
            assert session_id not in self.sessions
            self.sessions[session_id] = Session(session_id, cmd.timeout_ms, cmd.password)
            return Applied(
                cmd.origin,
                cmd.seq,
                entry.zxid,
                session_id=session_id,
                password=cmd.password,
                timeout_ms=cmd.timeout_ms,
            )
        if isinstance(cmd, CloseSession):
            if cmd.session_id not in self.sessions:
                return Applied(
                    cmd.origin, cmd.seq, entry.zxid, Err.SESSIONEXPIRED, session_id=cmd.session_id
                )
            del self.sessions[cmd.session_id]
            events = self.tree.close_session(cmd.session_id, entry.zxid)
            return Applied(
                cmd.origin,
                cmd.seq,
                entry.zxid,
                session_id=cmd.session_id,
                events=tuple(events),
                closed_session=True,
            )
        if isinstance(cmd, Barrier):
            return Applied(cmd.origin, cmd.seq, entry.zxid)
        assert isinstance(cmd, ExpireTTL)
        expired: list[WatchEvent] = []
        for path in cmd.paths:
            node = self.tree.find(path)
            # Re-check at apply time: the node may have changed since the leader looked.
            if node is not None and path in self.tree.expired_ttl_nodes(cmd.time_ms):
                expired += self.tree.delete(path, -1, zxid=entry.zxid)
        return Applied(0, 0, entry.zxid, events=tuple(expired))

    def snapshot(self) -> bytes:
        # Bulk path, hand-packed (positional tuples, an ACL table like ZooKeeper's ACL cache):
        # it runs on the Raft loop, so it must stay well under a heartbeat interval even for
        # tens of thousands of znodes.
        acl_ids: dict[tuple[ACL, ...], int] = {}
        nodes = []
        for path, n in self.tree.nodes.items():
            acl_id = acl_ids.setdefault(n.acl, len(acl_ids))
            nodes.append(
                (
                    path,
                    n.data,
                    acl_id,
                    n.czxid,
                    n.mzxid,
                    n.ctime,
                    n.mtime,
                    n.version,
                    n.cversion,
                    n.aversion,
                    n.ephemeral_owner,
                    n.pzxid,
                    n.child_creates,
                )
            )
        acls = [[(a.perms, a.id.scheme, a.id.id) for a in acl] for acl in acl_ids]
        sessions = [(s.session_id, s.timeout_ms, s.password) for s in self.sessions.values()]
        image = (SNAPSHOT_FORMAT, acls, nodes, sessions, self.last_zxid, self.applied_index)
        data: bytes = msgpack.packb(image, use_bin_type=True)
        return data

    def restore(self, data: bytes) -> None:
        fmt, acls, nodes, sessions, last_zxid, applied_index = msgpack.unpackb(
            data, raw=False, use_list=False
        )
        assert fmt == SNAPSHOT_FORMAT, f"unknown snapshot format {fmt}"
        acl_table = [tuple(ACL(p, Id(sch, i)) for p, sch, i in acl) for acl in acls]
        tree = DataTree()
        tree.nodes = {}
        for row in nodes:
            path, value, acl_id, *stat, child_creates = row
            czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = stat
            node = Znode(
                value,
                acl_table[acl_id],
                czxid,
                mzxid,
                ctime,
                mtime,
                version,
                cversion,
                aversion,
                owner,
                pzxid,
            )
            node.child_creates = child_creates
            tree.nodes[path] = node
        for path, node in tree.nodes.items():  # second pass: parents exist now
            if path != "/":
                tree.nodes[parent_of(path)].children.add(path.rsplit("/", 1)[1])
            if node.session_owner:
                tree.ephemerals.setdefault(node.session_owner, set()).add(path)
        self.tree = tree
        self.sessions = {sid: Session(sid, t, pw) for sid, t, pw in sessions}
        self.last_zxid = last_zxid
        self.applied_index = applied_index

    def stats(self) -> dict[str, int]:
        return {
            "znodes": self.tree.node_count,
            "sessions": len(self.sessions),
            "ephemerals": sum(len(p) for p in self.tree.ephemerals.values()),
        }

    # ------------------------------------------------------------------ sessions

    @staticmethod
    def session_id_for(origin: int, index: int) -> int:
        assert 0 < origin < 128, origin
        return (origin << SESSION_ID_BITS) | (index & ((1 << SESSION_ID_BITS) - 1))

    # ------------------------------------------------------------------ writes

    def _apply_write(self, cmd: Write, zxid: int) -> Applied:
        def fail(err: int) -> Applied:
            return Applied(cmd.origin, cmd.seq, zxid, err, session_id=cmd.session_id)

        if cmd.session_id not in self.sessions:
            return fail(Err.SESSIONEXPIRED)
        try:
            record = decode_request(cmd.op, cmd.body)
        except (JuteError, UnknownOpcode):
            return fail(Err.MARSHALLINGERROR)
        events: list[WatchEvent] = []
        try:
            if cmd.op == _OP_MULTI:
                assert isinstance(record, MultiRequest)
                response: Any = self._multi(cmd, record, zxid, events)
            else:
                response = self._one(cmd, cmd.op, record, zxid, events)
        except ZkError as exc:
            return fail(exc.code)
        return Applied(
            cmd.origin,
            cmd.seq,
            zxid,
            0,
            response,
            session_id=cmd.session_id,
            events=tuple(events),
        )

    def _multi(
        self, cmd: Write, request: MultiRequest, zxid: int, events: list[WatchEvent]
    ) -> MultiResponse:
        tree = self.tree
        tree.begin()
        results: list[tuple[int, int, Any]] = []
        failed_at = -1
        failure = 0
        for i, (op, record) in enumerate(request.ops):
            try:
                if op not in MULTI_OPS:
                    raise ZkError(Err.BADARGUMENTS, f"op {op} not allowed in multi")
                response = self._one(cmd, op, record, zxid, events, in_multi=True)
            except ZkError as exc:
                failed_at, failure = i, exc.code
                break
            results.append((_multi_result_type(op), 0, response))
        if failed_at < 0:
            tree.commit()
            return MultiResponse(results)
        tree.rollback()
        events.clear()
        errors: list[tuple[int, int, Any]] = []
        for i in range(len(request.ops)):
            if i < failed_at:
                code = 0
            elif i == failed_at:
                code = failure
            else:
                code = Err.RUNTIMEINCONSISTENCY
            errors.append((-1, code, ErrorResponse(code)))
        return MultiResponse(errors)

    def _one(
        self,
        cmd: Write,
        op: int,
        record: Any,
        zxid: int,
        events: list[WatchEvent],
        *,
        in_multi: bool = False,
    ) -> Any:
        tree = self.tree
        ids = cmd.identities
        if op in (_OP_CREATE, _OP_CREATE2, _OP_CREATE_CONTAINER, _OP_CREATE_TTL):
            assert isinstance(record, CreateRequest | CreateTTLRequest)
            try:
                mode = CreateMode(record.flags)
            except ValueError:
                raise ZkError(Err.BADARGUMENTS, f"bad create flags {record.flags}") from None
            ttl = record.ttl if isinstance(record, CreateTTLRequest) else 0
            if mode.is_ttl and (op != _OP_CREATE_TTL or not self.ttl_enabled):
                raise ZkError(Err.UNIMPLEMENTED if not self.ttl_enabled else Err.BADARGUMENTS)
            if op == _OP_CREATE_TTL and not mode.is_ttl:
                raise ZkError(Err.BADARGUMENTS, "createTTL needs a TTL mode")
            if op == _OP_CREATE_CONTAINER and not mode.is_container:
                raise ZkError(Err.BADARGUMENTS, "createContainer needs the container mode")
            error = validate_path(record.path, sequential=mode.is_sequential)
            if error is not None:
                raise ZkError(Err.BADARGUMENTS, error)
            if record.path == "/":
                raise ZkError(Err.NODEEXISTS)
            parent = tree.find(parent_of(record.path))
            if parent is None:
                raise ZkError(Err.NONODE)
            acls.check(parent.acl, _CREATE, ids)
            acl = acls.normalize(record.acl, ids)
            path, node, evs = tree.create(
                record.path,
                record.data,
                acl,
                mode,
                session_id=cmd.session_id,
                zxid=zxid,
                time_ms=cmd.time_ms,
                ttl_ms=ttl,
            )
            events += evs
            if op == _OP_CREATE and not in_multi:
                return CreateResponse(path)
            if op == _OP_CREATE and in_multi:
                return CreateResponse(path)
            return Create2Response(path, node.stat())
        if op in (_OP_DELETE, _OP_DELETE_CONTAINER):
            assert isinstance(record, DeleteRequest)
            _check_path(record.path)
            if record.path == "/":
                raise ZkError(Err.BADARGUMENTS, "cannot delete /")
            tree.get(record.path)
            acls.check(tree.get(parent_of(record.path)).acl, _DELETE, ids)
            events += tree.delete(record.path, record.version, zxid=zxid)
            return None
        if op == _OP_SET_DATA:
            assert isinstance(record, SetDataRequest)
            _check_path(record.path)
            acls.check(tree.get(record.path).acl, _WRITE, ids)
            node, evs = tree.set_data(
                record.path, record.data, record.version, zxid=zxid, time_ms=cmd.time_ms
            )
            events += evs
            return StatResponse(node.stat())
        if op == _OP_SET_ACL:
            assert isinstance(record, SetACLRequest)
            _check_path(record.path)
            acls.check(tree.get(record.path).acl, _ADMIN, ids)
            node = tree.set_acl(record.path, acls.normalize(record.acl, ids), record.version)
            return StatResponse(node.stat())
        if op == _OP_CHECK:
            assert isinstance(record, CheckVersionRequest)
            _check_path(record.path)
            node = tree.check(record.path, record.version)
            acls.check(node.acl, _READ, ids)
            return None if in_multi else StatResponse(node.stat())
        raise ZkError(Err.UNIMPLEMENTED, f"op {op}")


def _check_path(path: str) -> None:
    error = validate_path(path)
    if error is not None:
        raise ZkError(Err.BADARGUMENTS, error)


def _multi_result_type(op: int) -> int:
    # kazoo only understands 1, 2, 5, 13 and -1 in multi results; createTTL and
    # createContainer report as create2 (15), like ZooKeeper.
    if op in (_OP_CREATE2, _OP_CREATE_CONTAINER, _OP_CREATE_TTL):
        return int(_OP_CREATE2)
    return int(op)
