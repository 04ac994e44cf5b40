"""`catch_up_events`: the notifications a controller owes its connections after a snapshot
install replaced its tree (issue #10), judged as ZooKeeper's `DataTree.setWatches` judges the
watches of a reconnecting client. Pure: a DataTree, a WatchTable, no processes."""

from __future__ import annotations

import copy
import itertools

import pytest

from controller.coord.datatree import OPEN_ACL_UNSAFE, DataTree
from controller.service.watches import KINDS, WatchTable
from controller.service.zk_reads import catch_up_events
from controller.zk.constants import EventType

CREATED = EventType.NODE_CREATED
DELETED = EventType.NODE_DELETED
CHANGED = EventType.NODE_DATA_CHANGED
CHILDREN = EventType.NODE_CHILDREN_CHANGED


class Tree:
    """A DataTree written through its own mutations, each at the next zxid."""

    def __init__(self) -> None:
        self.tree = DataTree()
        self._zxid = itertools.count(1)
        self.zxid = 0
        self.states = {0: copy.deepcopy(self.tree)}  # the tree as of each zxid

    def _next(self) -> int:
        self.states[self.zxid] = copy.deepcopy(self.tree)
        self.zxid = next(self._zxid)
        return self.zxid

    def create(self, path: str, data: bytes = b"") -> None:
        self.tree.add(path, data, OPEN_ACL_UNSAFE, 0, zxid=self._next(), time_ms=1)

    def set(self, path: str, data: bytes) -> None:
        self.tree.set_data(path, data, zxid=self._next(), time_ms=2)

    def delete(self, path: str) -> None:
        self.tree.delete(path, zxid=self._next())


@pytest.fixture
def t() -> Tree:
    tree = Tree()
    tree.create("/a", b"1")
    tree.create("/a/x")
    tree.create("/b")
    return tree


def catch_up(t: Tree, watches: WatchTable, since: int) -> dict[object, list[tuple[int, str]]]:
    before = t.states[since] if since < t.zxid else t.tree
    return catch_up_events(before, t.tree, watches, since)


def registered(watches: WatchTable) -> set[tuple[str, str, object]]:
    return {
        (kind, path, key)
        for kind in KINDS
        for path, keys in getattr(watches, kind).items()
        for key in keys
    }


# ---------------------------------------------------------------- one-shot data watches


def test_data_watch_on_changed_node_fires_and_is_consumed(t: Tree) -> None:
    w = WatchTable()
    w.add("data", "/a", "c1")
    since = t.zxid
    t.set("/a", b"2")
    assert catch_up(t, w, since) == {"c1": [(CHANGED, "/a")]}
    assert registered(w) == set()
    assert w.paths_for("c1") == set() and w.count() == 0
    assert catch_up(t, w, since) == {}  # fired once only


def test_data_watch_on_unchanged_node_stays(t: Tree) -> None:
    w = WatchTable()
    w.add("data", "/a", "c1")
    since = t.zxid
    t.set("/b", b"other")  # a change elsewhere
    t.create("/a/y")  # a child of /a: its pzxid moves, not its mzxid
    assert catch_up(t, w, since) == {}
    assert registered(w) == {("data", "/a", "c1")}
    # The kept watch still fires for a later change, as a normal one-shot watch.
    assert w.trigger(CHANGED, "/a") == {"c1"}


def test_data_watch_on_node_changed_exactly_at_since_stays(t: Tree) -> None:
    w = WatchTable()
    t.set("/a", b"2")
    since = t.zxid  # the controller had applied this change already
    w.add("data", "/a", "c1")
    assert catch_up(t, w, since) == {}
    assert registered(w) == {("data", "/a", "c1")}


def test_data_watch_on_deleted_node_fires_node_deleted(t: Tree) -> None:
    w = WatchTable()
    w.add("data", "/b", "c1")
    since = t.zxid
    t.delete("/b")
    assert catch_up(t, w, since) == {"c1": [(DELETED, "/b")]}
    assert registered(w) == set()


def test_data_watch_on_deleted_and_recreated_node_fires_data_changed(t: Tree) -> None:
    # setWatches sees only the new node, whose mzxid is past the client's zxid.
    w = WatchTable()
    w.add("data", "/b", "c1")
    since = t.zxid
    t.delete("/b")
    t.create("/b")
    assert catch_up(t, w, since) == {"c1": [(CHANGED, "/b")]}
    assert registered(w) == set()


# ---------------------------------------------------------------- exist watches


def test_exist_watch_on_created_node_fires_node_created(t: Tree) -> None:
    w = WatchTable()
    w.add("exist", "/new", "c1")
    since = t.zxid
    t.create("/new")
    assert catch_up(t, w, since) == {"c1": [(CREATED, "/new")]}
    assert registered(w) == set()


def test_exist_watch_on_still_missing_node_stays(t: Tree) -> None:
    w = WatchTable()
    w.add("exist", "/new", "c1")
    since = t.zxid
    t.create("/other")
    assert catch_up(t, w, since) == {}
    assert registered(w) == {("exist", "/new", "c1")}
    assert w.trigger(CREATED, "/new") == {"c1"}


def test_exist_watch_on_node_created_and_deleted_in_between_stays(t: Tree) -> None:
    # Nothing in the new tree tells the gap from no change, as on reconnect.
    w = WatchTable()
    w.add("exist", "/new", "c1")
    since = t.zxid
    t.create("/new")
    t.delete("/new")
    assert catch_up(t, w, since) == {}
    assert registered(w) == {("exist", "/new", "c1")}


# ---------------------------------------------------------------- child watches


def test_child_watch_fires_when_a_child_was_created(t: Tree) -> None:
    w = WatchTable()
    w.add("child", "/a", "c1")
    since = t.zxid
    t.create("/a/y")
    assert catch_up(t, w, since) == {"c1": [(CHILDREN, "/a")]}
    assert registered(w) == set()


def test_child_watch_fires_when_a_child_was_deleted(t: Tree) -> None:
    w = WatchTable()
    w.add("child", "/a", "c1")
    since = t.zxid
    t.delete("/a/x")
    assert catch_up(t, w, since) == {"c1": [(CHILDREN, "/a")]}
    assert registered(w) == set()


def test_child_watch_ignores_data_changes(t: Tree) -> None:
    w = WatchTable()
    w.add("child", "/a", "c1")
    since = t.zxid
    t.set("/a", b"2")  # the node's own data
    t.set("/a/x", b"2")  # a child's data: not a membership change
    assert catch_up(t, w, since) == {}
    assert registered(w) == {("child", "/a", "c1")}


def test_child_watch_on_deleted_node_fires_node_deleted(t: Tree) -> None:
    w = WatchTable()
    w.add("child", "/b", "c1")
    since = t.zxid
    t.delete("/b")
    assert catch_up(t, w, since) == {"c1": [(DELETED, "/b")]}
    assert registered(w) == set()


# ---------------------------------------------------------------- several watches together


def test_every_connection_is_notified_once_per_watch(t: Tree) -> None:
    w = WatchTable()
    for key in ("c1", "c2"):
        w.add("data", "/a", key)
        w.add("child", "/a", key)
        w.add("exist", "/new", key)
    w.add("data", "/b", "c3")  # unchanged: stays
    since = t.zxid
    t.set("/a", b"2")
    t.create("/a/y")
    t.create("/new")
    owed = catch_up(t, w, since)
    # Per connection, in setWatches' order: data, exist, child.
    expected = [(CHANGED, "/a"), (CREATED, "/new"), (CHILDREN, "/a")]
    assert owed == {"c1": expected, "c2": expected}
    assert registered(w) == {("data", "/b", "c3")}
    assert w.count() == 1 and w.paths_for("c1") == set() and w.paths_for("c2") == set()
    assert catch_up(t, w, since) == {}


def test_nothing_owed_when_nothing_changed(t: Tree) -> None:
    w = WatchTable()
    w.add("data", "/a", "c1")
    w.add("exist", "/new", "c1")
    w.add("child", "/a", "c1")
    w.add("persistent", "/a", "c1")
    w.add("persistent_child", "/a", "c1")
    w.add("recursive", "/", "c2")
    w.add("recursive_child", "/", "c2")
    before = registered(w)
    assert catch_up(t, w, t.zxid) == {}
    assert registered(w) == before


# ---------------------------------------------------------------- persistent watches


def test_persistent_watch_fires_for_its_changed_node_and_stays(t: Tree) -> None:
    w = WatchTable()
    w.add("persistent", "/a", "c1")
    w.add("persistent_child", "/a", "c1")
    since = t.zxid
    t.set("/a", b"2")
    t.set("/a", b"3")  # two changes in the gap: one notification
    assert catch_up(t, w, since) == {"c1": [(CHANGED, "/a")]}
    assert registered(w) == {("persistent", "/a", "c1"), ("persistent_child", "/a", "c1")}
    assert catch_up(t, w, t.zxid) == {}


def test_persistent_watch_sees_children_changes(t: Tree) -> None:
    w = WatchTable()
    w.add("persistent", "/a", "c1")
    w.add("persistent_child", "/a", "c1")
    since = t.zxid
    t.create("/a/y")
    assert catch_up(t, w, since) == {"c1": [(CHILDREN, "/a")]}
    assert len(registered(w)) == 2


def test_persistent_watch_on_created_node_fires_node_created(t: Tree) -> None:
    w = WatchTable()
    w.add("persistent", "/new", "c1")
    since = t.zxid
    t.create("/new")
    assert catch_up(t, w, since) == {"c1": [(CREATED, "/new")]}
    assert len(registered(w)) == 1


def test_persistent_watch_on_created_node_with_children_sees_both(t: Tree) -> None:
    w = WatchTable()
    w.add("persistent", "/new", "c1")
    w.add("persistent_child", "/new", "c1")
    since = t.zxid
    t.create("/new")
    t.create("/new/kid")
    assert catch_up(t, w, since) == {"c1": [(CREATED, "/new"), (CHILDREN, "/new")]}
    assert len(registered(w)) == 2


def test_persistent_watch_on_created_childless_node_is_not_told_of_children(t: Tree) -> None:
    w = WatchTable()
    w.add("persistent", "/new", "c1")  # addWatch PERSISTENT registers both halves
    w.add("persistent_child", "/new", "c1")
    since = t.zxid
    t.create("/new")
    assert catch_up(t, w, since) == {"c1": [(CREATED, "/new")]}


def test_persistent_watch_on_deleted_node_fires_node_deleted(t: Tree) -> None:
    w = WatchTable()
    w.add("persistent", "/b", "c1")
    w.add("persistent_child", "/b", "c1")
    since = t.zxid
    t.delete("/b")
    assert catch_up(t, w, since) == {"c1": [(DELETED, "/b")]}
    assert len(registered(w)) == 2  # persistent: never consumed


# ---------------------------------------------------------------- recursive watches


def test_recursive_watch_fires_once_per_changed_node_below_it(t: Tree) -> None:
    w = WatchTable()
    w.add("recursive", "/a", "c1")
    w.add("recursive_child", "/a", "c1")
    t.create("/a/z")
    since = t.zxid
    t.set("/a/x", b"2")
    t.set("/a/x", b"3")
    t.create("/a/y")
    t.create("/a/y/deep")
    t.set("/b", b"outside")
    owed = catch_up(t, w, since)
    assert set(owed) == {"c1"}
    # No NodeChildrenChanged for recursive watches; unchanged /a and /a/z say nothing.
    assert sorted(owed["c1"]) == sorted(
        [(CHANGED, "/a/x"), (CREATED, "/a/y"), (CREATED, "/a/y/deep")]
    )
    assert registered(w) == {("recursive", "/a", "c1"), ("recursive_child", "/a", "c1")}


def test_recursive_watch_lists_parents_before_children(t: Tree) -> None:
    w = WatchTable()
    w.add("recursive", "/", "c1")
    since = t.zxid
    t.create("/n")
    t.create("/n/m")
    t.create("/n/m/o")
    events = catch_up(t, w, since)["c1"]
    assert events == [(CREATED, "/n"), (CREATED, "/n/m"), (CREATED, "/n/m/o")]


def test_recursive_watch_on_deleted_root_fires_node_deleted(t: Tree) -> None:
    w = WatchTable()
    w.add("recursive", "/a", "c1")
    w.add("recursive_child", "/a", "c1")
    since = t.zxid
    t.delete("/a/x")
    t.delete("/a")
    assert catch_up(t, w, since) == {"c1": [(DELETED, "/a/x"), (DELETED, "/a")]}
    assert len(registered(w)) == 2


def test_one_shot_watch_is_consumed_beside_persistent_ones(t: Tree) -> None:
    w = WatchTable()
    w.add("data", "/a", "c1")
    w.add("persistent", "/a", "c1")
    w.add("recursive", "/", "c2")
    since = t.zxid
    t.set("/a", b"2")
    owed = catch_up(t, w, since)
    assert set(owed) == {"c1", "c2"}
    assert set(owed["c1"]) == {(CHANGED, "/a")}
    assert owed["c2"] == [(CHANGED, "/a")]
    assert registered(w) == {("persistent", "/a", "c1"), ("recursive", "/", "c2")}


# ---------------------------------------------------------------- formerly known gaps


def test_persistent_watch_on_node_that_never_existed_says_nothing(t: Tree) -> None:
    w = WatchTable()
    w.add("persistent", "/later", "c1")  # addWatch before the node exists: allowed
    w.add("recursive", "/later2", "c1")
    since = t.zxid
    t.set("/a", b"2")
    assert catch_up(t, w, since) == {}


def test_a_connection_is_told_of_each_change_once(t: Tree) -> None:
    w = WatchTable()
    w.add("data", "/a", "c1")
    w.add("persistent", "/a", "c1")
    w.add("recursive", "/", "c1")
    since = t.zxid
    t.set("/a", b"2")
    assert catch_up(t, w, since) == {"c1": [(CHANGED, "/a")]}
