"""The znode tree: ZooKeeper's data model as a pure, deterministic structure.

Mutations take the zxid and time of the log entry that causes them, never a clock, so every
controller that applies the same entries holds the same tree. Each mutation returns the watch
events it triggers; delivering them is the serving shell's job.

Mutations do no argument, ACL or version checking: the state machine does those first, in
ZooKeeper's order (see `controller/coord/writes.py`). Paths are looked up as ZooKeeper's node
map does, where the empty path is an alias of the root.

Multi-op atomicity: `begin()` starts recording the prior state of every node a mutation
touches; `rollback()` restores it, `commit()` forgets it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs

from controller.coord import quota
from controller.zk.constants import EPHEMERAL_CONTAINER_OWNER, Err, EventType
from controller.zk.records import ACL, Id, Stat

OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(31, Id("world", "anyone")),)
READ_ACL_UNSAFE: tuple[ACL, ...] = (ACL(1, Id("world", "anyone")),)
TTL_OWNER_MASK = 0xFF << 56
MAX_TTL_MS = (1 << 40) - 1
CONFIG_NODE = "/zookeeper/config"
# Nodes nobody may delete (DataTree.isSpecialPath).
SPECIAL_PATHS = frozenset({"/", "/zookeeper", quota.QUOTA_ROOT, CONFIG_NODE})


def ttl_owner(ttl_ms: int) -> int:
    """The ephemeralOwner ZooKeeper stores for a TTL node (0xFF << 56 | ttl, signed)."""
    return (TTL_OWNER_MASK | ttl_ms) - (1 << 64)


class ZkError(Exception):
    """An operation failed with a ZooKeeper error code (`code`, one of `Err`)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or f"error {code}")
        self.code = code


WatchEvent = tuple[int, str]  # (EventType, path)


@attrs.define(slots=True)
class Znode:
    """One node: data (None for a null buffer, distinct from b""), ACL and the Stat fields
    ZooKeeper keeps (dataLength and numChildren are derived)."""

    data: bytes | None
    acl: tuple[ACL, ...]
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int = 0
    cversion: int = 0  # child creates + deletes (kept for the snapshot format; see stat())
    aversion: int = 0
    ephemeral_owner: int = 0
    pzxid: int = 0
    children: set[str] = attrs.field(factory=set)
    # Children ever created: the sequential suffix, and what ZooKeeper 3.8 stores as cversion.
    child_creates: int = 0

    def stat(self) -> Stat:
        n = len(self.children)
        return Stat(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            # DataNode.copyStat: creates * 2 - children, i.e. creates + deletes, except for
            # nodes holding children never created (/ and /zookeeper show -1 and -2 at first).
            2 * self.child_creates - n,
            self.aversion,
            # Containers and TTL nodes report 0, as ZooKeeper's getClientEphemeralOwner.
            0 if self.is_container or self.is_ttl else self.ephemeral_owner,
            len(self.data) if self.data else 0,
            n,
            self.pzxid,
        )

    @property
    def size(self) -> int:
        return len(self.data) if self.data else 0

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


def zk_parent(path: str) -> str | None:
    """The parent ZooKeeper looks up: everything before the last '/' ("" is the root alias),
    or None when there is no '/' at all."""
    idx = path.rfind("/")
    return None if idx < 0 else path[:idx]


def name_of(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def join(parent: str, name: str) -> str:
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


class DataTree:
    """All znodes, plus the index of ephemerals by session and the quota roots."""

    def __init__(self) -> None:
        self.nodes: dict[str, Znode] = {}
        self.ephemerals: dict[int, set[str]] = {}
        # Quota roots (PathTrie in ZooKeeper), each counted once per limits node naming it;
        # derived from the nodes, so a restored tree rebuilds it (`reindex`).
        self.quota_roots: dict[str, int] = {}
        self._undo: dict[str, Znode | None] | None = None
        self._undo_eph: dict[int, set[str] | None] | None = None
        self._undo_quota: dict[str, int] | None = None
        root = Znode(b"", OPEN_ACL_UNSAFE, 0, 0, 0, 0)
        self.nodes["/"] = root
        for path in ("/zookeeper", quota.QUOTA_ROOT):
            self.nodes[path] = Znode(b"", OPEN_ACL_UNSAFE, 0, 0, 0, 0)
            self.nodes[parent_of(path)].children.add(name_of(path))
        # ZooKeeper sets the config node's ACL and data with version -1 (DataTree.addConfigNode,
        # ZKDatabase.initConfigInZKDatabase); its content is each server's own (`set_config`).
        config = Znode(b"", READ_ACL_UNSAFE, 0, 0, 0, 0, version=-1, aversion=-1)
        self.nodes[CONFIG_NODE] = config
        self.nodes["/zookeeper"].children.add("config")

    # ------------------------------------------------------------------ reads

    def find(self, path: str) -> Znode | None:
        """ZooKeeper's node map lookup: exact path, with "" an alias of the root."""
        return self.nodes.get(path or "/")

    def get(self, path: str) -> Znode:
        node = self.nodes.get(path or "/")
        if node is None:
            raise ZkError(Err.NONODE, path)
        return node

    def children(self, path: str) -> list[str]:
        return sorted(self.get(path).children)

    def all_children_number(self, path: str) -> int:
        """Nodes whose path starts with `path + "/"`, as getAllChildrenNumber counts them (so
        "" counts the root too)."""
        self.get(path)
        if path == "":
            return len(self.nodes)
        return sum(1 for _ in self.descendants(path))

    def descendants(self, path: str) -> Iterator[str]:
        """Every path strictly below `path`, parents before children."""
        stack = [path]
        while stack:
            p = stack.pop()
            for child in self.nodes[p].children:
                cp = join(p, child)
                yield cp
                stack.append(cp)

    def ephemerals_of(self, session_id: int, prefix: str = "/") -> list[str]:
        """getEphemerals: a blank or "/" prefix means all, else a plain string prefix."""
        paths = self.ephemerals.get(session_id, set())
        if quota.java_trim(prefix) in ("", "/"):
            return sorted(paths)
        return sorted(p for p in paths if p.startswith(prefix))

    @property
    def node_count(self) -> int:
        return len(self.nodes)

    def approximate_data_size(self) -> int:
        return sum(len(p) + n.size for p, n in self.nodes.items())

    # ------------------------------------------------------------------ transactions

    def begin(self) -> None:
        assert self._undo is None, "nested transaction"
        self._undo, self._undo_eph = {}, {}
        self._undo_quota = dict(self.quota_roots)

    def commit(self) -> None:
        assert self._undo is not None
        self._undo = self._undo_eph = self._undo_quota = None

    def rollback(self) -> None:
        assert self._undo is not None and self._undo_eph is not None
        assert self._undo_quota is not None
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
        self.quota_roots = self._undo_quota
        self._undo = self._undo_eph = self._undo_quota = None

    def _save(self, path: str) -> None:
        if self._undo is not None and path not in self._undo:
            node = self.nodes.get(path)
            self._undo[path] = node.copy() if node is not None else None

    def _save_eph(self, session: int) -> None:
        if self._undo_eph is not None and session not in self._undo_eph:
            paths = self.ephemerals.get(session)
            self._undo_eph[session] = set(paths) if paths is not None else None

    # ------------------------------------------------------------------ writes

    def add(
        self,
        path: str,
        data: bytes | None,
        acl: Sequence[ACL],
        owner: int,
        *,
        zxid: int,
        time_ms: int,
    ) -> tuple[Znode, list[WatchEvent]]:
        """Create `path` (final name; its parent exists, it does not) with `owner` as
        ephemeralOwner (0, a session, the container marker or a TTL marker)."""
        parent_key = zk_parent(path) or "/"
        parent = self.nodes[parent_key]
        self._save(parent_key)
        self._save(path)
        node = Znode(data, tuple(acl), zxid, zxid, time_ms, time_ms, ephemeral_owner=owner)
        node.pzxid = zxid
        self.nodes[path] = node
        parent.children.add(name_of(path))
        parent.cversion += 1
        parent.child_creates += 1
        parent.pzxid = zxid
        session = node.session_owner
        if session:
            self._save_eph(session)
            self.ephemerals.setdefault(session, set()).add(path)
        self._quota_created(parent_key, path, node)
        events: list[WatchEvent] = [
            (EventType.NODE_CREATED, path),
            (EventType.NODE_CHILDREN_CHANGED, parent_key),
        ]
        return node, events

    def delete(self, path: str, *, zxid: int) -> list[WatchEvent]:
        """Remove a childless node; a container left without children goes with it
        (ZooKeeper's ContainerManager does that in the background; doing it in the same entry
        keeps it deterministic)."""
        events = self._remove(path, zxid)
        parent_path = zk_parent(path) or "/"
        parent = self.nodes[parent_path]
        if parent.is_container and not parent.children and parent_path not in SPECIAL_PATHS:
            events += self._remove(parent_path, zxid)
        return events

    def _remove(self, path: str, zxid: int) -> list[WatchEvent]:
        node = self.nodes[path]
        parent_path = zk_parent(path) or "/"
        parent = self.nodes[parent_path]
        self._save(path)
        self._save(parent_path)
        del self.nodes[path]
        parent.children.discard(name_of(path))
        parent.cversion += 1
        parent.pzxid = max(parent.pzxid, zxid)
        owner = node.session_owner
        if owner:
            self._save_eph(owner)
            paths = self.ephemerals.get(owner)
            if paths is not None:
                paths.discard(path)
                if not paths:
                    del self.ephemerals[owner]
        self._quota_removed(parent_path, path, node)
        return [(EventType.NODE_DELETED, path), (EventType.NODE_CHILDREN_CHANGED, parent_path)]

    def set_data(
        self, path: str, data: bytes | None, *, zxid: int, time_ms: int
    ) -> tuple[Znode, list[WatchEvent]]:
        node = self.get(path)
        key = path or "/"
        self._save(key)
        before = node.size
        node.data = data
        node.version += 1
        node.mzxid = zxid
        node.mtime = time_ms
        self._quota_update(key, node.size - before, 0)
        return node, [(EventType.NODE_DATA_CHANGED, key)]

    def set_acl(self, path: str, acl: Sequence[ACL]) -> Znode:
        node = self.get(path)
        self._save(path or "/")
        node.acl = tuple(acl)
        node.aversion += 1
        return node

    def set_config(self, data: bytes, mtime: int) -> None:
        """This server's view of the ensemble in /zookeeper/config (local, like ZooKeeper's:
        each server writes its own configuration there when it starts)."""
        node = self.nodes[CONFIG_NODE]
        node.data = data
        node.mtime = mtime

    def close_session(self, session_id: int, zxid: int) -> list[WatchEvent]:
        """Delete every ephemeral of a session (deepest first)."""
        events: list[WatchEvent] = []
        for path in sorted(self.ephemerals.get(session_id, ()), key=len, reverse=True):
            if path in self.nodes:
                events += self.delete(path, zxid=zxid)
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

    # ------------------------------------------------------------------ quotas

    def reindex(self) -> None:
        """Rebuild what is derived from the nodes: ephemerals by session, quota roots."""
        self.ephemerals = {}
        self.quota_roots = {}
        for path, node in self.nodes.items():
            if node.session_owner:
                self.ephemerals.setdefault(node.session_owner, set()).add(path)
            if path != "/" and name_of(path) == quota.LIMIT_NODE:
                key = quota.limit_parent_key(parent_of(path))
                if key is not None:
                    self.quota_roots[key] = self.quota_roots.get(key, 0) + 1

    def _quota_created(self, parent: str, path: str, node: Znode) -> None:
        size = node.size  # ZooKeeper accounts the data as created, even for a stats node
        name = name_of(path)
        if name in (quota.LIMIT_NODE, quota.STAT_NODE):
            key = quota.limit_parent_key(parent)
            if key is not None and name == quota.LIMIT_NODE:
                self.quota_roots[key] = self.quota_roots.get(key, 0) + 1
            elif key is not None:
                # A new stats node starts from the subtree's actual usage.
                target = self.nodes.get(key)
                count = used = 0
                if target is not None:
                    count, used = 1, target.size
                    for p in self.descendants(key):
                        count += 1
                        used += self.nodes[p].size
                node.data = quota.format_stats({"count": count, "bytes": used})
        self._quota_update(path, size, 1)

    def _quota_removed(self, parent: str, path: str, node: Znode) -> None:
        if name_of(path) == quota.LIMIT_NODE:
            key = quota.limit_parent_key(parent)
            left = self.quota_roots.get(key, 0) - 1 if key is not None else 0
            if key is not None and left > 0:
                self.quota_roots[key] = left
            elif key is not None:
                self.quota_roots.pop(key, None)
        self._quota_update(path, -node.size, -1)

    def _quota_update(self, path: str, bytes_diff: int, count_diff: int) -> None:
        key = quota.max_prefix(self.quota_roots, path)
        if key is None:
            return
        stats_path = quota.stat_path(key)
        stats = self.nodes.get(stats_path)
        if stats is None:
            return  # ZooKeeper logs "Missing node for stat"
        data = quota.adjusted(stats.data, bytes_diff, count_diff)
        if data is not None:
            self._save(stats_path)
            stats.data = data
