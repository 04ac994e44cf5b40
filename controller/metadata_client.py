"""The broker metadata layout through a ZooKeeper client (the trio side of
`controller.metadata`, which must stay free of I/O).

- `read_nodes` / `read_image`: walk `/brokers`, `/config/topics`, `/admin`, `/controller` and
  `/controller_epoch` with pipelined reads and build a `MetadataImage` (what the CLI decides
  from; the demo broker re-syncs its cache from the raw nodes);
- `apply_ops`: a decision's tree operations as one atomic multi, raising `OpFailed` naming
  the first operation that failed.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Collection, Sequence

import trio

from controller.client import ZkClient
from controller.client.errors import NoNodeError, ZkException, describe, error_for
from controller.metadata import records as r
from controller.metadata.image import MetadataImage, ZnodeView, image_from_nodes
from controller.metadata.ops import TreeOp
from controller.metadata.zkops import to_multi
from controller.zk.constants import Err

ROOTS: tuple[str, ...] = (r.BROKERS, r.CONFIG, r.ADMIN, r.CONTROLLER, r.CONTROLLER_EPOCH)
READ_CONCURRENCY = 128  # reads in flight at once


def first_leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _descend(parts: list[str], topics: Collection[str] | None) -> bool:
    """Whether the walk lists the children of the znode at `parts` (the layout's dirs)."""
    n = len(parts)
    head = parts[0]
    if head == "brokers":
        if n <= 2:
            return n == 1 or parts[1] in ("ids", "topics")
        if parts[1] != "topics" or n > 5 or (topics is not None and parts[2] not in topics):
            return False
        return n == 3 or parts[3] == "partitions"
    if head == "config":
        return n == 1 or (n == 2 and parts[1] == "topics")
    if head == "admin":
        return n == 1 or (n == 2 and parts[1] in ("delete_topics", "controlled_shutdown"))
    return False


def _wanted(parts: list[str], topics: Collection[str] | None) -> bool:
    if topics is None or len(parts) < 3:
        return True
    if parts[0] == "config" or (parts[0] == "brokers" and parts[1] == "topics"):
        return parts[2] in topics
    return True


async def read_nodes(
    client: ZkClient,
    roots: Sequence[str] = ROOTS,
    *,
    topics: Collection[str] | None = None,
    sync: bool = True,
) -> list[tuple[str, ZnodeView]]:
    """Every znode of the metadata layout below `roots` (only the named topics' subtrees if
    `topics` is given), read with up to READ_CONCURRENCY requests in flight. `sync` first
    makes the connected controller catch up with the leader. Nodes deleted during the walk
    are skipped; a connection loss raises the client's exception (not a group)."""
    nodes: list[tuple[str, ZnodeView]] = []
    limiter = trio.CapacityLimiter(READ_CONCURRENCY)

    async def visit(path: str, nursery: trio.Nursery) -> None:
        parts = path.split("/")[1:]
        children: list[str] = []
        async with limiter:
            try:
                data, stat = await client.get(path)
            except NoNodeError:
                return
            view = ZnodeView(data, stat.version, stat.czxid, stat.mzxid, stat.ephemeral_owner)
            nodes.append((path, view))
            if stat.num_children and _descend(parts, topics):
                try:
                    children = await client.get_children(path)
                except NoNodeError:
                    return
        for child in sorted(children):
            if _wanted([*parts, child], topics):
                nursery.start_soon(visit, f"{path}/{child}", nursery)

    try:
        if sync:
            await client.sync("/")
        async with trio.open_nursery() as nursery:
            for root in roots:
                nursery.start_soon(visit, root, nursery)
    except BaseExceptionGroup as group:
        leaf = first_leaf(group)
        if isinstance(leaf, ZkException):
            raise leaf from None
        raise
    return nodes


async def read_image(
    client: ZkClient, *, topics: Collection[str] | None = None, sync: bool = True
) -> MetadataImage:
    """The metadata image as the quorum holds it now (see `read_nodes`)."""
    nodes = await read_nodes(client, topics=topics, sync=sync)
    zxid = max([client.last_zxid, *(view.mzxid for _, view in nodes)])
    return image_from_nodes(nodes, zxid)


class OpFailed(Exception):
    """An atomic multi failed: `op` is the first operation that failed, `error` why. Nothing
    of the multi was applied."""

    def __init__(self, op: TreeOp, error: ZkException) -> None:
        super().__init__(describe(error, op.path))
        self.op = op
        self.error = error

    @property
    def code(self) -> int:
        return self.error.code


def multi_failure(results: Sequence[tuple[int, int, object]]) -> tuple[int, int] | None:
    """(index, error code) of the operation that failed a multi, or None if it succeeded."""
    for i, (_kind, err, _record) in enumerate(results):
        if err not in (0, Err.RUNTIMEINCONSISTENCY):
            return i, err
    return None


async def apply_ops(client: ZkClient, ops: Sequence[TreeOp]) -> list[tuple[int, int, object]]:
    """Apply `ops` as one atomic multi; returns the per-op results. Raises `OpFailed` if an
    operation failed, the client's error if the request itself failed (on
    ConnectionLossError the outcome is unknown: the caller checks before retrying)."""
    if not ops:
        return []
    results = await client.multi(to_multi(ops))
    failure = multi_failure(results)
    if failure is not None:
        index, code = failure
        raise OpFailed(ops[index], error_for(code))
    return results


def new_uuid() -> str:
    """A random UUID in Kafka's text form: 22 characters of URL-safe base64, no padding
    (topic ids, incarnation ids)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
