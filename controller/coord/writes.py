"""Write requests applied to the data tree, checked in ZooKeeper 3.8's order.

PrepRequestProcessor decides which error wins: for each opcode the checks below run in the
same order as there (arguments, ACL normalisation, existence, ACL, version, ...), so a request
that is wrong in several ways gets ZooKeeper's answer. Everything here is deterministic: it
runs when the entry is applied, on every controller.
"""

from __future__ import annotations

from typing import Any

import attrs

from controller.coord import acl as acls
from controller.coord.datatree import (
    MAX_TTL_MS,
    SPECIAL_PATHS,
    DataTree,
    WatchEvent,
    ZkError,
    Znode,
    ttl_owner,
    zk_parent,
)
from controller.zk.constants import EPHEMERAL_CONTAINER_OWNER, CreateMode, Err, OpCode, Perm
from controller.zk.protocol import validate_path
from controller.zk.records import (
    CheckVersionRequest,
    Create2Response,
    CreateRequest,
    CreateResponse,
    CreateTTLRequest,
    DeleteRequest,
    SetACLRequest,
    SetDataRequest,
    StatResponse,
)

# Plain ints: enum member lookups are slow on the per-write path.
_READ, _WRITE, _CREATE, _DELETE, _ADMIN = (int(p) for p in Perm if p is not Perm.ALL)
OP_CHECK = int(OpCode.CHECK)
OP_CREATE = int(OpCode.CREATE)
OP_CREATE2 = int(OpCode.CREATE2)
OP_CREATE_CONTAINER = int(OpCode.CREATE_CONTAINER)
OP_CREATE_TTL = int(OpCode.CREATE_TTL)
OP_DELETE = int(OpCode.DELETE)
OP_DELETE_CONTAINER = int(OpCode.DELETE_CONTAINER)
OP_SET_ACL = int(OpCode.SET_ACL)
OP_SET_DATA = int(OpCode.SET_DATA)
CREATE_OPS = frozenset({OP_CREATE, OP_CREATE2, OP_CREATE_CONTAINER, OP_CREATE_TTL})


@attrs.frozen
class Context:
    """Who writes, and the entry's zxid and time."""

    session_id: int
    identities: tuple[tuple[str, str], ...]
    zxid: int
    time_ms: int
    extended_types: bool  # ZooKeeper's extendedTypesEnabled: TTL nodes allowed


def _check_path(path: str) -> None:
    error = validate_path(path)
    if error is not None:
        raise ZkError(Err.BADARGUMENTS, error)


def _check_version(current: int, expected: int) -> None:
    if expected != -1 and expected != current:
        raise ZkError(Err.BADVERSION)


def multi_create_op(op: int, record: Any) -> tuple[int, Any]:
    """What a create inside a multi really is. MultiOperationRecord rebuilds each create from
    its flags (Op.create), whatever opcode it was sent with: TTL flags make a createTTL,
    flags 4 a createContainer, anything else a plain create (so create2 answers as create).
    A TTL mode sent as a CreateRequest cannot be read as one (ZooKeeper's ClassCastException:
    MARSHALLINGERROR for the whole multi)."""
    flags = record.flags
    if flags in (CreateMode.PERSISTENT_WITH_TTL, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL):
        if not isinstance(record, CreateTTLRequest):
            raise ZkError(Err.MARSHALLINGERROR, "TTL create without a TTL")
        return OP_CREATE_TTL, record
    if isinstance(record, CreateTTLRequest):  # the TTL is dropped
        record = CreateRequest(record.path, record.data, record.acl, record.flags)
    return (OP_CREATE_CONTAINER if flags == CreateMode.CONTAINER else OP_CREATE), record


def create(
    tree: DataTree, ctx: Context, op: int, record: Any, events: list[WatchEvent]
) -> tuple[str, Znode]:
    """pRequest2TxnCreate; the node's kind follows the opcode (createContainer and createTTL
    transactions), ephemerality the flags."""
    try:
        mode = CreateMode(record.flags)
    except ValueError:
        raise ZkError(Err.BADARGUMENTS, f"bad create flags {record.flags}") from None
    ttl = record.ttl if op == OP_CREATE_TTL else -1
    if mode.is_ttl and not ctx.extended_types:
        raise ZkError(Err.UNIMPLEMENTED, "TTL nodes need extendedTypesEnabled")
    if mode.is_ttl and not 0 < ttl <= MAX_TTL_MS:
        raise ZkError(Err.BADARGUMENTS, f"ttl {ttl}")
    if not mode.is_ttl and ttl >= 0:
        raise ZkError(Err.BADARGUMENTS, f"ttl not valid for mode {mode.name}")
    path = record.path
    parent_path = zk_parent(path)
    if parent_path is None or "\0" in path:
        raise ZkError(Err.BADARGUMENTS, path)
    acl = acls.normalize(record.acl, ctx.identities)
    parent = tree.get(parent_path)
    acls.check(parent.acl, _CREATE, ctx.identities)
    if mode.is_sequential:
        path = f"{path}{parent.child_creates:010d}"
    _check_path(path)
    if tree.find(path) is not None:
        raise ZkError(Err.NODEEXISTS, path)
    if parent.session_owner:
        raise ZkError(Err.NOCHILDRENFOREPHEMERALS, path)
    if op == OP_CREATE_CONTAINER:
        owner = EPHEMERAL_CONTAINER_OWNER
    elif op == OP_CREATE_TTL:
        if ttl <= 0:  # createTTL with a non-TTL mode and no TTL: nothing valid to store
            raise ZkError(Err.BADARGUMENTS, f"ttl {ttl}")
        owner = ttl_owner(ttl)
    else:
        owner = ctx.session_id if mode.is_ephemeral else 0
    node, evs = tree.add(path, record.data, acl, owner, zxid=ctx.zxid, time_ms=ctx.time_ms)
    events += evs
    return path, node


def apply_one(
    tree: DataTree,
    ctx: Context,
    op: int,
    record: Any,
    events: list[WatchEvent],
    *,
    in_multi: bool = False,
) -> Any:
    """Apply one write; returns its response record (None for delete and, in a multi,
    check). Raises ZkError."""
    ids = ctx.identities
    if op in CREATE_OPS:
        assert isinstance(record, CreateRequest | CreateTTLRequest)
        path, node = create(tree, ctx, op, record, events)
        if op == OP_CREATE:
            return CreateResponse(path)
        return Create2Response(path, node.stat())
    if op in (OP_DELETE, OP_DELETE_CONTAINER):
        assert isinstance(record, DeleteRequest)
        path = record.path
        parent_path = zk_parent(path)
        if parent_path is None or "\0" in path or path in SPECIAL_PATHS:
            raise ZkError(Err.BADARGUMENTS, f"cannot delete {path!r}")
        acls.check(tree.get(parent_path).acl, _DELETE, ids)
        node = tree.get(path)
        _check_version(node.version, record.version)
        if node.children:
            raise ZkError(Err.NOTEMPTY, path)
        events += tree.delete(path, zxid=ctx.zxid)
        return None
    if op == OP_SET_DATA:
        assert isinstance(record, SetDataRequest)
        _check_path(record.path)
        node = tree.get(record.path)
        acls.check(node.acl, _WRITE, ids)
        _check_version(node.version, record.version)
        node, evs = tree.set_data(record.path, record.data, zxid=ctx.zxid, time_ms=ctx.time_ms)
        events += evs
        return StatResponse(node.stat())
    if op == OP_SET_ACL:
        assert isinstance(record, SetACLRequest)
        _check_path(record.path)
        acl = acls.normalize(record.acl, ids)
        node = tree.get(record.path)
        acls.check(node.acl, _ADMIN, ids)
        _check_version(node.aversion, record.version)
        return StatResponse(tree.set_acl(record.path, acl).stat())
    if op == OP_CHECK:
        assert isinstance(record, CheckVersionRequest)
        _check_path(record.path)
        node = tree.get(record.path)
        acls.check(node.acl, _READ, ids)
        _check_version(node.version, record.version)
        return None if in_multi else StatResponse(node.stat())
    raise ZkError(Err.UNIMPLEMENTED, f"op {op}")


def multi_result_type(op: int) -> int:
    # createTTL and createContainer results are Create2Response (CreateResult with a Stat).
    if op in (OP_CREATE2, OP_CREATE_CONTAINER, OP_CREATE_TTL):
        return OP_CREATE2
    return op
