"""Tree operations (`controller.metadata.ops`) as ZooKeeper multi requests.

Pure: used by the active controller (proposing through the coordination service) and by the
admin CLI (through a ZooKeeper client).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controller.coord.datatree import OPEN_ACL_UNSAFE
from controller.metadata.ops import CheckOp, CreateOp, DeleteOp, SetDataOp, TreeOp
from controller.zk.constants import CreateMode, OpCode
from controller.zk.records import (
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    MultiRequest,
    SetDataRequest,
)


def to_request(op: TreeOp) -> tuple[int, Any]:
    """One tree operation as (opcode, jute request record)."""
    if isinstance(op, CreateOp):
        mode = CreateMode.EPHEMERAL if op.ephemeral else CreateMode.PERSISTENT
        return int(OpCode.CREATE), CreateRequest(op.path, op.data, list(OPEN_ACL_UNSAFE), int(mode))
    if isinstance(op, SetDataOp):
        return int(OpCode.SET_DATA), SetDataRequest(op.path, op.data, op.version)
    if isinstance(op, DeleteOp):
        return int(OpCode.DELETE), DeleteRequest(op.path, op.version)
    assert isinstance(op, CheckOp)
    return int(OpCode.CHECK), CheckVersionRequest(op.path, op.version)


def to_multi(ops: Iterable[TreeOp]) -> list[tuple[int, Any]]:
    """Ops in order, as the `[(opcode, record)]` list a multi takes."""
    return [to_request(op) for op in ops]


def multi_request(ops: Iterable[TreeOp]) -> MultiRequest:
    return MultiRequest(to_multi(ops))
