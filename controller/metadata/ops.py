"""Tree operations returned by the controller's decisions, and the result shape.

The shell turns a `ControllerResult`'s ops into ZooKeeper multi requests, each prefixed by a
version check of `/controller_epoch` (Kafka's KAFKA-6082 fencing), split into bounded
batches (`MAX_OPS_PER_MULTI`, Kafka's `MAX_RECORDS_PER_BATCH`).
"""

from __future__ import annotations

import attrs

MAX_OPS_PER_MULTI = 10_000  # the hard cap (Kafka's MAX_RECORDS_PER_BATCH)
MAX_BYTES_PER_MULTI = 512 * 1024  # keeps one log entry well below the entry size limit
CONTROLLER_OPS_PER_MULTI = 2_000
"""What the active controller actually sends per multi: every controller applies a multi in
one step of its Raft loop, and 2,000 ops take tens of milliseconds there, well under an
election timeout (10,000 took ~400 ms at 100,000 partitions and cost elections)."""


@attrs.frozen
class CreateOp:
    """Create `path` with `data` (ephemeral: owned by the writer's session)."""

    path: str
    data: bytes = b""
    ephemeral: bool = False


@attrs.frozen
class SetDataOp:
    """Set `path`'s data if its data version is `version` (-1: any)."""

    path: str
    data: bytes
    version: int = -1


@attrs.frozen
class DeleteOp:
    """Delete `path` if its data version is `version` (-1: any)."""

    path: str
    version: int = -1


@attrs.frozen
class CheckOp:
    """Fail the whole multi unless `path`'s data version is `version`."""

    path: str
    version: int


TreeOp = CreateOp | SetDataOp | DeleteOp | CheckOp


@attrs.frozen
class ControllerResult:
    """What a decision returns (the shape of Kafka's `ControllerResult(records, response)`):
    the tree operations to apply atomically (or in order, in bounded batches), the reply for
    whoever asked, and human-readable lines describing what was decided (for the log)."""

    ops: tuple[TreeOp, ...] = ()
    reply: object = None
    messages: tuple[str, ...] = ()

    def __add__(self, other: ControllerResult) -> ControllerResult:
        return ControllerResult(
            self.ops + other.ops, other.reply or self.reply, self.messages + other.messages
        )


def op_size(op: TreeOp) -> int:
    """Approximate encoded size in bytes (for batching)."""
    data = op.data if isinstance(op, CreateOp | SetDataOp) else b""
    return len(op.path) + len(data) + 32


def batches(
    ops: tuple[TreeOp, ...] | list[TreeOp], max_ops: int = MAX_OPS_PER_MULTI
) -> list[list[TreeOp]]:
    """Split ops in order into batches of at most `max_ops` (≤ MAX_OPS_PER_MULTI) ops and
    about MAX_BYTES_PER_MULTI bytes (a single larger op still gets a batch of its own)."""
    assert 0 < max_ops <= MAX_OPS_PER_MULTI
    out: list[list[TreeOp]] = []
    current: list[TreeOp] = []
    size = 0
    for op in ops:
        n = op_size(op)
        if current and (len(current) >= max_ops or size + n > MAX_BYTES_PER_MULTI):
            out.append(current)
            current, size = [], 0
        current.append(op)
        size += n
    if current:
        out.append(current)
    return out
