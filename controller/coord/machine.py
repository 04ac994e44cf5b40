"""The coordination service's replicated state machine: data tree plus session table.

`apply(entry)` decodes a coordination entry (a typed transaction, see commands.py) and
executes it against the tree with the entry's zxid and the leader's time stamped in it,
returning an `Applied` result. Validation (paths,
versions, ACLs, sessions) happens here, at apply time, so it is deterministic and sees
exactly the state the log defines.
"""

from __future__ import annotations

from typing import Any

import attrs
import msgpack

from controller.coord import writes
from controller.coord.commands import (
    COORD_PREFIX,
    Applied,
    Barrier,
    CloseSession,
    CreateSession,
    EntryFormatError,
    ExpireTTL,
    Stamp,
    Write,
    decode_entry,
)
from controller.coord.datatree import (
    CONFIG_NODE,
    DataTree,
    WatchEvent,
    ZkError,
    Znode,
    parent_of,
)
from controller.raft.types import Entry, EntryKind
from controller.zk.constants import Err, OpCode
from controller.zk.records import (
    ACL,
    MULTI_WRITE_OPS,
    ErrorResponse,
    Id,
    MultiRequest,
    MultiResponse,
)

SESSION_ID_BITS = 56
WRITE_OPS = {
    *MULTI_WRITE_OPS,
    OpCode.DELETE_CONTAINER,
    OpCode.SET_ACL,
    OpCode.MULTI,
}
_OP_MULTI = int(OpCode.MULTI)
_OP_DELETE_CONTAINER = int(OpCode.DELETE_CONTAINER)


@attrs.define
class Session:
    """A replicated session: its negotiated timeout and password."""

    session_id: int
    timeout_ms: int
    password: bytes


SNAPSHOT_FORMAT = 1


class CoordStateMachine:
    """Data tree + sessions; implements the node's `StateMachine` protocol."""

    def __init__(self) -> None:
        self.tree = DataTree()
        self.sessions: dict[int, Session] = {}
        self.last_zxid = 0
        self.applied_index = 0
        self._config: tuple[bytes, int] = (b"", 0)

    def set_config(self, data: bytes, mtime: int) -> None:
        """This controller's /zookeeper/config content (local, kept across restores)."""
        self._config = (data, mtime)
        self.tree.set_config(data, mtime)

    # ------------------------------------------------------------------ StateMachine

    def apply(self, entry: Entry) -> object:
        assert entry.kind is EntryKind.COMMAND
        self.applied_index = entry.index
        self.last_zxid = entry.zxid
        if not entry.data.startswith(COORD_PREFIX):
            return None  # not ours (e.g. a benchmark's opaque payload)
        at, cmd = decode_entry(entry.data)
        if isinstance(cmd, Write):
            return self._apply_write(cmd, entry.zxid, at)
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
            if node is not None and path in self.tree.expired_ttl_nodes(at.time_ms):
                expired += self.tree.delete(path, zxid=entry.zxid)
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
        if fmt != SNAPSHOT_FORMAT:
            raise EntryFormatError(
                f"snapshot of format {fmt}, this controller reads format {SNAPSHOT_FORMAT}"
            )
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
        for path in tree.nodes:  # second pass: parents exist now
            if path != "/":
                tree.nodes[parent_of(path)].children.add(path.rsplit("/", 1)[1])
        tree.reindex()
        config = tree.nodes.get(CONFIG_NODE)
        if config is not None:  # each controller keeps its own view of the ensemble
            config.data, config.mtime = self._config
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

    def _apply_write(self, cmd: Write, zxid: int, at: Stamp) -> Applied:
        def fail(err: int) -> Applied:
            return Applied(cmd.origin, cmd.seq, zxid, err, session_id=cmd.session_id)

        if cmd.session_id not in self.sessions:
            return fail(Err.SESSIONEXPIRED)
        record = cmd.request
        ctx = writes.Context(cmd.session_id, cmd.identities, zxid, at.time_ms, at.extended_types)
        events: list[WatchEvent] = []
        try:
            if cmd.op == _OP_MULTI:
                assert isinstance(record, MultiRequest)
                response: Any = self._multi(ctx, record, events)
            elif cmd.op == _OP_DELETE_CONTAINER:
                # ZooKeeper reads the whole request buffer as the path of an (internal)
                # deleteContainer, and that always holds a NUL byte: BADARGUMENTS.
                raise ZkError(Err.BADARGUMENTS, "deleteContainer is internal")
            else:
                response = writes.apply_one(self.tree, ctx, cmd.op, record, events)
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
        self, ctx: writes.Context, request: MultiRequest, events: list[WatchEvent]
    ) -> MultiResponse:
        """Atomic: the first failing op reports its error, earlier ones 0, later ones
        RUNTIMEINCONSISTENCY, nothing applied. A read op in a multi fails the whole request
        with MARSHALLINGERROR (ZooKeeper cannot turn it into a transaction)."""
        ops = []
        for op, record in request.ops:
            if op not in MULTI_WRITE_OPS:
                raise ZkError(Err.MARSHALLINGERROR, f"op {op} in a multi")
            ops.append(
                writes.multi_create_op(op, record) if op in writes.CREATE_OPS else (op, record)
            )
        tree = self.tree
        tree.begin()
        results: list[tuple[int, int, Any]] = []
        failed_at, failure = -1, 0
        for i, (op, record) in enumerate(ops):
            try:
                response = writes.apply_one(tree, ctx, op, record, events, in_multi=True)
            except ZkError as exc:
                failed_at, failure = i, exc.code
                break
            results.append((writes.multi_result_type(op), 0, response))
        if failed_at < 0:
            tree.commit()
            return MultiResponse(results)
        tree.rollback()
        events.clear()
        errors: list[tuple[int, int, Any]] = []
        for i in range(len(ops)):
            code = 0 if i < failed_at else failure if i == failed_at else Err.RUNTIMEINCONSISTENCY
            errors.append((-1, code, ErrorResponse(code)))
        return MultiResponse(errors)
