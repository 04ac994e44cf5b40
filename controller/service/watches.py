"""Watch bookkeeping for the connections of one controller (pure).

Maps watch registrations to connection keys and turns applied events into the set of
notifications to send, following ZooKeeper's rules: one-shot data/exist/child watches fire
once and are removed; persistent watches stay; recursive watches see every event below
their path except NodeChildrenChanged.

As in ZooKeeper, where `addWatch` registers the watcher in both its data and its child watch
manager, a persistent or recursive watch has a data half (`persistent`, `recursive`) and a
child half (`persistent_child`, `recursive_child`) that removeWatches removes separately.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from controller.zk.constants import EventType

Key = Hashable
KINDS = ("data", "exist", "child", "persistent", "recursive", "persistent_child", "recursive_child")
DATA_KINDS = ("data", "exist", "persistent", "recursive")
CHILD_KINDS = ("child", "persistent_child", "recursive_child")


def ancestors(path: str) -> Iterable[str]:
    """`path` itself and every ancestor up to "/"."""
    yield path
    while path != "/":
        idx = path.rfind("/")
        path = "/" if idx == 0 else path[:idx]
        yield path


class WatchTable:
    """All watches of this controller's connections."""

    def __init__(self) -> None:
        self.data: dict[str, set[Key]] = {}
        self.exist: dict[str, set[Key]] = {}
        self.child: dict[str, set[Key]] = {}
        self.persistent: dict[str, set[Key]] = {}
        self.recursive: dict[str, set[Key]] = {}
        self.persistent_child: dict[str, set[Key]] = {}
        self.recursive_child: dict[str, set[Key]] = {}
        self._by_key: dict[Key, set[tuple[str, str]]] = {}

    def _table(self, kind: str) -> dict[str, set[Key]]:
        table: dict[str, set[Key]] = getattr(self, kind)
        return table

    def add(self, kind: str, path: str, key: Key) -> None:
        self._table(kind).setdefault(path, set()).add(key)
        self._by_key.setdefault(key, set()).add((kind, path))

    def remove(self, kind: str, path: str, key: Key) -> bool:
        table = self._table(kind)
        keys = table.get(path)
        if keys is None or key not in keys:
            return False
        keys.discard(key)
        if not keys:
            del table[path]
        self._by_key.get(key, set()).discard((kind, path))
        return True

    def has(self, kind: str, path: str, key: Key) -> bool:
        return key in self._table(kind).get(path, ())

    def anyone_watches(self, kind: str, path: str) -> bool:
        """Some connection has a watch of this kind on exactly this path."""
        return bool(self._table(kind).get(path))

    def drop(self, key: Key) -> None:
        """Forget every watch of a connection (it closed)."""
        for kind, path in self._by_key.pop(key, set()):
            table = self._table(kind)
            keys = table.get(path)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del table[path]

    def count(self) -> int:
        return sum(len(v) for v in self._by_key.values())

    def count_for(self, key: Key) -> int:
        return len(self._by_key.get(key, ()))

    def paths_for(self, key: Key) -> set[tuple[str, str]]:
        return set(self._by_key.get(key, ()))

    def one_shot(self, kind: str) -> list[str]:
        """The paths with a one-shot watch of `kind` ("data", "exist", "child")."""
        assert kind in ("data", "exist", "child"), kind
        return list(self._table(kind))

    def consume(self, kind: str, path: str) -> set[Key]:
        """Remove and return the connections with a `kind` watch on exactly `path`."""
        out: set[Key] = set()
        self._fire(kind, path, out)
        return out

    def _fire(self, kind: str, path: str, out: set[Key]) -> None:
        keys = self._table(kind).pop(path, None)
        if keys:
            for key in keys:
                self._by_key.get(key, set()).discard((kind, path))
            out |= keys

    def trigger(self, event: int, path: str) -> set[Key]:
        """Connections to notify of (event, path); one-shot watches are consumed."""
        out: set[Key] = set()
        if event == EventType.NODE_CHILDREN_CHANGED:
            self._fire("child", path, out)
            out |= self.persistent_child.get(path, set())
            return out  # recursive watches never see NodeChildrenChanged
        self._fire("data", path, out)
        self._fire("exist", path, out)
        out |= self.persistent.get(path, set())
        deleted = event == EventType.NODE_DELETED
        if deleted:
            self._fire("child", path, out)
            out |= self.persistent_child.get(path, set())
        if self.recursive or (deleted and self.recursive_child):
            for p in ancestors(path):
                out |= self.recursive.get(p, set())
                if deleted:
                    out |= self.recursive_child.get(p, set())
        return out
