"""Read-side requests of the ZooKeeper protocol, answered from this controller's replica.

They follow ZooKeeper 3.8's FinalRequestProcessor: reads look the path up in the node map
without validating it (a malformed path simply does not exist: NONODE; only `exists` refuses
a NUL character), then check READ permission. Watch requests are not validated either; an
unknown watcher type or addWatch mode is a MARSHALLINGERROR there, as ZooKeeper's conversion
throws. Watch bookkeeping is per connection (`conn_id`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from controller.coord import acl as acls
from controller.coord.datatree import DataTree, ZkError
from controller.service.watches import CHILD_KINDS, DATA_KINDS, KINDS, WatchTable
from controller.zk.constants import AddWatchMode, Err, EventType, OpCode, Perm, WatcherType
from controller.zk.records import (
    MULTI_READ_OPS,
    AddWatchRequest,
    ClientInfo,
    ErrorResponse,
    ExistsRequest,
    GetACLRequest,
    GetACLResponse,
    GetAllChildrenNumberRequest,
    GetAllChildrenNumberResponse,
    GetChildren2Request,
    GetChildren2Response,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    MultiRequest,
    MultiResponse,
    RemoveWatchesRequest,
    SetWatches,
    SetWatches2,
    StatResponse,
    WhoAmIResponse,
)

_READ = int(Perm.READ)
_ADMIN = int(Perm.ADMIN)
OP_ADD_WATCH = int(OpCode.ADD_WATCH)
OP_CHECK_WATCHES = int(OpCode.CHECK_WATCHES)
OP_EXISTS = int(OpCode.EXISTS)
OP_GET_ACL = int(OpCode.GET_ACL)
OP_GET_ALL_CHILDREN_NUMBER = int(OpCode.GET_ALL_CHILDREN_NUMBER)
OP_GET_CHILDREN = int(OpCode.GET_CHILDREN)
OP_GET_CHILDREN2 = int(OpCode.GET_CHILDREN2)
OP_GET_DATA = int(OpCode.GET_DATA)
OP_GET_EPHEMERALS = int(OpCode.GET_EPHEMERALS)
OP_MULTI_READ = int(OpCode.MULTI_READ)
OP_REMOVE_WATCHES = int(OpCode.REMOVE_WATCHES)
OP_SET_WATCHES = int(OpCode.SET_WATCHES)
OP_SET_WATCHES2 = int(OpCode.SET_WATCHES2)
OP_WHO_AM_I = int(OpCode.WHO_AM_I)

# removeWatches/checkWatches: which watch kinds a WatcherType covers (3.8 knows 1-3 only).
_KINDS_BY_TYPE: dict[int, tuple[str, ...]] = {
    WatcherType.CHILDREN: CHILD_KINDS,
    WatcherType.DATA: DATA_KINDS,
    WatcherType.ANY: KINDS,
}


class ZkReads:
    """Answers read requests for one controller (tree, watch table, watch limit)."""

    def __init__(self, tree: Callable[[], DataTree], watches: WatchTable, max_watches: int) -> None:
        self._tree = tree  # the machine's current tree (replaced by snapshot restores)
        self.watches = watches
        self.max_watches = max_watches

    def _watch(self, conn_id: int, kind: str, path: str) -> None:
        limit = self.max_watches
        if limit and self.watches.count_for(conn_id) >= limit:
            raise ZkError(Err.THROTTLEDOP, f"more than {limit} watches")
        self.watches.add(kind, path, conn_id)

    def read(
        self,
        conn_id: int,
        session_id: int,
        identities: list[tuple[str, str]],
        op: int,
        record: Any,
    ) -> Any:
        """The response record of a read request; raises ZkError."""
        tree = self._tree()
        if op == OP_EXISTS:
            assert isinstance(record, ExistsRequest)
            if "\0" in record.path:
                raise ZkError(Err.BADARGUMENTS, "NUL in path")
            node = tree.find(record.path)
            if record.watch:
                self._watch(conn_id, "data" if node is not None else "exist", record.path)
            if node is None:
                raise ZkError(Err.NONODE)
            return StatResponse(node.stat())
        if op == OP_GET_DATA:
            assert isinstance(record, GetDataRequest)
            node = tree.get(record.path)
            acls.check(node.acl, _READ, identities)
            if record.watch:
                self._watch(conn_id, "data", record.path)
            return GetDataResponse(node.data, node.stat())
        if op in (OP_GET_CHILDREN, OP_GET_CHILDREN2):
            assert isinstance(record, GetChildrenRequest | GetChildren2Request)
            node = tree.get(record.path)
            acls.check(node.acl, _READ, identities)
            if record.watch:
                self._watch(conn_id, "child", record.path)
            children = sorted(node.children)
            if op == OP_GET_CHILDREN:
                return GetChildrenResponse(children)
            return GetChildren2Response(children, node.stat())
        if op == OP_GET_ACL:
            assert isinstance(record, GetACLRequest)
            node = tree.get(record.path)
            if not (
                acls.has_permission(node.acl, _READ, identities)
                or acls.has_permission(node.acl, _ADMIN, identities)
            ):
                raise ZkError(Err.NOAUTH)
            return GetACLResponse(acls.visible_acl(node.acl, identities), node.stat())
        if op == OP_GET_EPHEMERALS:
            assert isinstance(record, GetEphemeralsRequest)
            return GetEphemeralsResponse(tree.ephemerals_of(session_id, record.prefix_path))
        if op == OP_GET_ALL_CHILDREN_NUMBER:
            assert isinstance(record, GetAllChildrenNumberRequest)
            node = tree.get(record.path)
            acls.check(node.acl, _READ, identities)
            return GetAllChildrenNumberResponse(tree.all_children_number(record.path))
        if op == OP_MULTI_READ:
            assert isinstance(record, MultiRequest)
            if any(sub_op not in MULTI_READ_OPS for sub_op, _ in record.ops):
                raise ZkError(Err.MARSHALLINGERROR, "write op in multiRead")
            results: list[tuple[int, int, Any]] = []
            for sub_op, sub in record.ops:
                # Op.getData/Op.getChildren carry no watch flag: sub-reads never watch.
                sub = type(sub)(sub.path, False)
                try:
                    response = self.read(conn_id, session_id, identities, sub_op, sub)
                    results.append((sub_op, 0, response))
                except ZkError as exc:
                    results.append((-1, exc.code, ErrorResponse(exc.code)))
            return MultiResponse(results)
        if op == OP_ADD_WATCH:
            assert isinstance(record, AddWatchRequest)
            if record.mode == AddWatchMode.PERSISTENT:
                kinds = ("persistent", "persistent_child")
            elif record.mode == AddWatchMode.PERSISTENT_RECURSIVE:
                kinds = ("recursive", "recursive_child")
            else:
                raise ZkError(Err.MARSHALLINGERROR, f"addWatch mode {record.mode}")
            for kind in kinds:
                self._watch(conn_id, kind, record.path)
            return ErrorResponse(0)
        if op in (OP_CHECK_WATCHES, OP_REMOVE_WATCHES):
            assert isinstance(record, RemoveWatchesRequest)
            self._remove_watches(conn_id, op, record)
            return None
        if op == OP_WHO_AM_I:
            # AuthUtil.getClientInfos: a digest id shows its user name only.
            return WhoAmIResponse(
                [ClientInfo(s, i.split(":")[0] if s == "digest" else i) for s, i in identities]
            )
        raise ZkError(Err.UNIMPLEMENTED)

    def _remove_watches(self, conn_id: int, op: int, req: RemoveWatchesRequest) -> None:
        """The server only answers: the client library itself delivers the "watch removed"
        events to its watchers (ZooKeeper sends no notification for this)."""
        kinds = _KINDS_BY_TYPE.get(req.type)
        if kinds is None:
            raise ZkError(Err.MARSHALLINGERROR, f"watcher type {req.type}")
        path = req.path
        if op == OP_CHECK_WATCHES:
            # ZooKeeper walks the path with PathParentIterator: it yields nothing for "" and
            # fails on a path without '/'.
            if not path:
                raise ZkError(Err.NOWATCHER)
            if "/" not in path:
                raise ZkError(Err.MARSHALLINGERROR, f"bad path {path!r}")
            # ZooKeeper 3.8's WatchManager.containsWatcher answers whether any connection
            # watches the path ("at the leaf node, all watcher types match").
            if not any(self.watches.anyone_watches(kind, path) for kind in kinds):
                raise ZkError(Err.NOWATCHER)
            return
        removed = [kind for kind in kinds if self.watches.remove(kind, path, conn_id)]
        if not removed:
            raise ZkError(Err.NOWATCHER)

    def set_watches(
        self, conn_id: int, req: SetWatches | SetWatches2, fire: Callable[[int, str], None]
    ) -> None:
        """Re-arm watches after a reconnect, firing what changed while away
        (DataTree.setWatches)."""
        tree = self._tree()
        rel = req.relative_zxid
        for kind, paths in (
            ("data", req.data_watches),
            ("exist", req.exist_watches),
            ("child", req.child_watches),
        ):
            for path in paths or ():
                event = one_shot_event(tree, kind, path, rel)
                if event is None:
                    self.watches.add(kind, path, conn_id)
                else:
                    fire(event, path)
        if isinstance(req, SetWatches2):
            for path in req.persistent_watches or ():
                self.watches.add("persistent", path, conn_id)
                self.watches.add("persistent_child", path, conn_id)
            for path in req.persistent_recursive_watches or ():
                self.watches.add("recursive", path, conn_id)
                self.watches.add("recursive_child", path, conn_id)


def one_shot_event(tree: DataTree, kind: str, path: str, since_zxid: int) -> int | None:
    """The event a one-shot watch of `kind` ("data", "exist", "child") on `path`, set when
    the tree was at `since_zxid`, is owed by `tree` now, or None to keep waiting: ZooKeeper's
    `DataTree.setWatches` rule (mzxid for data watches, pzxid for child watches, existence
    for exist watches)."""
    node = tree.find(path)
    if kind == "exist":
        return EventType.NODE_CREATED if node is not None else None
    if node is None:
        return EventType.NODE_DELETED
    if kind == "data":
        return EventType.NODE_DATA_CHANGED if node.mzxid > since_zxid else None
    return EventType.NODE_CHILDREN_CHANGED if node.pzxid > since_zxid else None


def catch_up_events(
    before: DataTree, tree: DataTree, watches: WatchTable, since_zxid: int
) -> dict[Any, list[tuple[int, str]]]:
    """The notifications owed after the tree jumped from `before` (its state at
    `since_zxid`) to `tree` without the entries in between being applied one by one (a
    snapshot install): per connection key, (event, path) in the order a client would have
    seen them, each at most once per key. One-shot watches are judged exactly as ZooKeeper's
    `DataTree.setWatches` judges them on reconnect, and consumed; a persistent watch fires
    once for its own node if it was created, changed or deleted, a recursive one once per
    node below it that was."""
    owed: dict[Any, list[tuple[int, str]]] = {}
    seen: set[tuple[Any, int, str]] = set()

    def fire(keys: Iterable[Any], event: int, path: str) -> None:
        for key in keys:
            if (key, event, path) not in seen:
                seen.add((key, event, path))
                owed.setdefault(key, []).append((event, path))

    def changed(path: str) -> int | None:
        """The event a persistent watch on `path` is owed, if any."""
        node = tree.find(path)
        if node is None:
            return EventType.NODE_DELETED if before.find(path) is not None else None
        if node.czxid > since_zxid:
            return EventType.NODE_CREATED
        return EventType.NODE_DATA_CHANGED if node.mzxid > since_zxid else None

    for kind in ("data", "exist", "child"):
        for path in list(watches.one_shot(kind)):
            event = one_shot_event(tree, kind, path, since_zxid)
            if event is not None:
                fire(watches.consume(kind, path), event, path)
    for path, keys in list(watches.persistent.items()):
        event = changed(path)
        if event is not None:
            fire(list(keys), event, path)
    for path, keys in list(watches.persistent_child.items()):
        node = tree.find(path)
        # A node created in the gap has pzxid == czxid: only children made since count.
        if (
            node is not None
            and node.pzxid > since_zxid
            and (node.pzxid > node.czxid or node.child_creates > 0)
        ):
            fire(list(keys), EventType.NODE_CHILDREN_CHANGED, path)
    for root, keys in list(watches.recursive.items()):
        paths = [root, *tree.descendants(root)] if tree.find(root) is not None else []
        gone: list[str] = []
        if before.find(root) is not None:  # deleted nodes, children before their parent
            gone = [p for p in [root, *before.descendants(root)] if tree.find(p) is None]
            gone.reverse()
        for path in [*paths, *gone]:
            event = changed(path)
            if event is not None:
                fire(list(keys), event, path)
    return owed
