"""The znode tree: ZooKeeper's data model as a pure, deterministic structure.

Mutations take the zxid and time of the log entry that causes them, never a clock, so every
controller that applies the same entries holds the same tree. Each mutation returns the watch
events it triggers; delivering them is the serving shell's job.

Multi-op atomicity: `begin()` starts recording the prior state of every node a mutation
touches; `rollback()` restores it, `commit()` forgets it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs

from controller.zk.constants import EPHEMERAL_CONTAINER_OWNER, CreateMode, Err, EventType
from controller.zk.records import ACL, Id, Stat

OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(31, Id("world", "anyone")),)
READ_ACL_UNSAFE: tuple[ACL, ...] = (ACL(1, Id("world", "anyone")),)
TTL_OWNER_MASK = 0xFF << 56
MAX_TTL_MS = (1 << 40) - 1


class ZkError(Exception):
    """An operation failed with a ZooKeeper error code (`code`, one of `Err`)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or f"error {code}")
        self.code = code


WatchEvent = tuple[int, str]  # (EventType, path)


@attrs.define(slots=True)
class Znode:
    """One node: data, ACL and the Stat fields ZooKeeper keeps (dataLength and numChildren
    are derived)."""

    data: bytes
    acl: tuple[ACL, ...]
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int = 0
    cversion: int = 0
    aversion: int = 0
    ephemeral_owner: int = 0
    pzxid: int = 0
    children: set[str] = attrs.field(factory=set)
    # Children ever created: the sequential suffix. ZooKeeper 3.8 bumps cversion on child
    # deletes too but numbers sequential children by creations only (checked against it).
    child_creates: int = 0

    def stat(self) -> Stat:
        return Stat(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            self.cversion,
            self.aversion,
            self.ephemeral_owner,
            len(self.data),
            len(self.children),
            self.pzxid,
        )

    def copy(self) -> Znode:
        return attrs.evolve(self, children=set(self.children))

    @property
    def is_container(self) -> bool:
        return self.ephemeral_owner == EPHEMERAL_CONTAINER_OWNER

    @property
    def is_ttl(self) -> bool:
        return (
            self.ephemeral_owner != EPHEMERAL_CONTAINER_OWNER
            and (self.ephemeral_owner & TTL_OWNER_MASK) == TTL_OWNER_MASK
        )

    @property
    def session_owner(self) -> int:
        """The owning session of an ephemeral node, else 0."""
        if self.ephemeral_owner == 0 or self.is_container or self.is_ttl:
            return 0
        return self.ephemeral_owner


def parent_of(path: str) -> str:
    assert path != "/" and path.startswith("/"), path
    idx = path.rfind("/")
    return "/" if idx == 0 else path[:idx]


def name_of(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def join(parent: str, name: str) -> str:
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


class DataTree:
    """All znodes, plus the index of ephemerals by session."""

    def __init__(self) -> None:
        self.nodes: dict[str, Znode] = {}
        self.ephemerals: dict[int, set[str]] = {}
        self._undo: dict[str, Znode | None] | None = None
        self._undo_eph: dict[int, set[str] | None] | None = None
        root = Znode(b"", OPEN_ACL_UNSAFE, 0, 0, 0, 0)
        self.nodes["/"] = root
        for path in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
            acl = READ_ACL_UNSAFE if path == "/zookeeper/config" else OPEN_ACL_UNSAFE
            self.nodes[path] = Znode(b"", acl, 0, 0, 0, 0)
            self.nodes[parent_of(path)].children.add(name_of(path))

    # ------------------------------------------------------------------ reads

    def get(self, path: str) -> Znode:
        node = self.nodes.get(path)
        if node is None:
            raise ZkError(Err.NONODE, path)
        return node

    def find(self, path: str) -> Znode | None:
        return self.nodes.get(path)

    def children(self, path: str) -> list[str]:
        return sorted(self.get(path).children)

    def all_children_number(self, path: str) -> int:
        """Descendants of `path` (excluding itself), as getAllChildrenNumber returns."""
        self.get(path)
        return sum(1 for _ in self._descendants(path))

    def _descendants(self, path: str) -> Iterator[str]:
        stack = [path]
        while stack:
            p = stack.pop()
            for child in self.nodes[p].children:
                cp = join(p, child)
                yield cp
                stack.append(cp)

    def ephemerals_of(self, session_id: int, prefix: str = "/") -> list[str]:
        paths = self.ephemerals.get(session_id, set())
        if prefix == "/":
            return sorted(paths)
        return sorted(p for p in paths if p == prefix or p.startswith(prefix))

    @property
    def node_count(self) -> int:
        return len(self.nodes)

    def approximate_data_size(self) -> int:
        return sum(len(p) + len(n.data) for p, n in self.nodes.items())

    # ------------------------------------------------------------------ transactions

    def begin(self) -> None:
        assert self._undo is None, "nested transaction"
        self._undo, self._undo_eph = {}, {}

    def commit(self) -> None:
        assert self._undo is not None
        self._undo = self._undo_eph = None

    def rollback(self) -> None:
        assert self._undo is not None and self._undo_eph is not None
        for path, node in self._undo.items():
            if node is None:
                self.nodes.pop(path, None)
            else:
                self.nodes[path] = node
        for session, paths in self._undo_eph.items():
            if paths is None:
                self.ephemerals.pop(session, None)
            else:
                self.ephemerals[session] = paths
        self._undo = self._undo_eph = None

    def _save(self, path: str) -> None:
        if self._undo is not None and path not in self._undo:
            node = self.nodes.get(path)
            self._undo[path] = node.copy() if node is not None else None

    def _save_eph(self, session: int) -> None:
        if self._undo_eph is not None and session not in self._undo_eph:
            paths = self.ephemerals.get(session)
            self._undo_eph[session] = set(paths) if paths is not None else None

    # ------------------------------------------------------------------ writes

    def create(
        self,
        path: str,
        data: bytes,
        acl: Sequence[ACL],
        mode: CreateMode,
        *,
        session_id: int,
        zxid: int,
        time_ms: int,
        ttl_ms: int = 0,
    ) -> tuple[str, Znode, list[WatchEvent]]:
        """Create a node; returns (actual path, node, events). Raises ZkError."""
        parent_path = parent_of(path) if path != "/" else "/"
        if path == "/":
            raise ZkError(Err.NODEEXISTS, path)
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise ZkError(Err.NONODE, parent_path)
        if parent.session_owner:
            raise ZkError(Err.NOCHILDRENFOREPHEMERALS, parent_path)
        if mode.is_sequential:
            path = f"{path}{parent.child_creates:010d}"
        if path in self.nodes:
            raise ZkError(Err.NODEEXISTS, path)
        if mode.is_ttl:
            if not 0 < ttl_ms <= MAX_TTL_MS:
                raise ZkError(Err.BADARGUMENTS, f"ttl {ttl_ms}")
            owner = (TTL_OWNER_MASK | ttl_ms) - (1 << 64)  # a signed long, as on the wire
        elif mode.is_container:
            owner = EPHEMERAL_CONTAINER_OWNER
        elif mode.is_ephemeral:
            owner = session_id
        else:
            owner = 0
        self._save(parent_path)
        self._save(path)
        node = Znode(data, tuple(acl), zxid, zxid, time_ms, time_ms, ephemeral_owner=owner)
        node.pzxid = zxid
        self.nodes[path] = node
        parent.children.add(name_of(path))
        parent.cversion += 1
        parent.child_creates += 1
        parent.pzxid = zxid
        if mode.is_ephemeral and not mode.is_container and not mode.is_ttl:
            self._save_eph(session_id)
            self.ephemerals.setdefault(session_id, set()).add(path)
        events: list[WatchEvent] = [
            (EventType.NODE_CREATED, path),
            (EventType.NODE_CHILDREN_CHANGED, parent_path),
        ]
        return path, node, events

    def delete(self, path: str, version: int, *, zxid: int) -> list[WatchEvent]:
        if path == "/" or path == "/zookeeper":
            raise ZkError(Err.BADARGUMENTS, f"cannot delete {path}")
        node = self.get(path)
        if version != -1 and node.version != version:
            raise ZkError(Err.BADVERSION, path)
        if node.children:
            raise ZkError(Err.NOTEMPTY, path)
        events = self._remove(path, zxid)
        parent_path = parent_of(path)
        parent = self.nodes[parent_path]
        # Containers disappear with their last child (ZooKeeper's ContainerManager does this
        # in the background; doing it in the same entry keeps it deterministic).
        if parent.is_container and not parent.children and parent_path != "/":
            events += self._remove(parent_path, zxid)
        return events

    def _remove(self, path: str, zxid: int) -> list[WatchEvent]:
        node = self.nodes[path]
        parent_path = parent_of(path)
        parent = self.nodes[parent_path]
        self._save(path)
        self._save(parent_path)
        del self.nodes[path]
        parent.children.discard(name_of(path))
        parent.cversion += 1
        parent.pzxid = zxid
        owner = node.session_owner
        if owner:
            self._save_eph(owner)
            paths = self.ephemerals.get(owner)
            if paths is not None:
                paths.discard(path)
                if not paths:
                    del self.ephemerals[owner]
        return [(EventType.NODE_DELETED, path), (EventType.NODE_CHILDREN_CHANGED, parent_path)]

    def set_data(
        self, path: str, data: bytes, version: int, *, zxid: int, time_ms: int
    ) -> tuple[Znode, list[WatchEvent]]:
        node = self.get(path)
        if version != -1 and node.version != version:
            raise ZkError(Err.BADVERSION, path)
        self._save(path)
        node.data = data
        node.version += 1
        node.mzxid = zxid
        node.mtime = time_ms
        return node, [(EventType.NODE_DATA_CHANGED, path)]

    def set_acl(self, path: str, acl: Sequence[ACL], version: int) -> Znode:
        node = self.get(path)
        if version != -1 and node.aversion != version:
            raise ZkError(Err.BADVERSION, path)
        self._save(path)
        node.acl = tuple(acl)
        node.aversion += 1
        return node

    def check(self, path: str, version: int) -> Znode:
        node = self.get(path)
        if version != -1 and node.version != version:
            raise ZkError(Err.BADVERSION, path)
        return node

    def close_session(self, session_id: int, zxid: int) -> list[WatchEvent]:
        """Delete every ephemeral of a session (deepest first)."""
        events: list[WatchEvent] = []
        for path in sorted(self.ephemerals.get(session_id, ()), key=len, reverse=True):
            if path in self.nodes:
                events += self._remove(path, zxid)
                parent_path = parent_of(path)
                parent = self.nodes[parent_path]
                if parent.is_container and not parent.children and parent_path != "/":
                    events += self._remove(parent_path, zxid)
        self.ephemerals.pop(session_id, None)
        return events

    def expired_ttl_nodes(self, now_ms: int) -> list[str]:
        """TTL nodes without children whose TTL has passed since their last change."""
        out = []
        for path, node in self.nodes.items():
            if node.is_ttl and not node.children:
                ttl = node.ephemeral_owner & MAX_TTL_MS
                if node.mtime + ttl <= now_ms:
                    out.append(path)
        return sorted(out)
