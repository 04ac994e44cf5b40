"""One-shot watches and the DataWatch / ChildrenWatch recipes."""

from __future__ import annotations

import queue
from collections.abc import Callable

from kazoo.client import KazooClient
from kazoo.protocol.states import EventType, WatchedEvent

from tests.zk.conftest import wait_until

WAIT = 10.0


def collector() -> tuple[queue.Queue[WatchedEvent], Callable[[WatchedEvent], None]]:
    events: queue.Queue[WatchedEvent] = queue.Queue()
    return events, events.put


def assert_quiet(events: queue.Queue[WatchedEvent], seconds: float = 0.5) -> None:
    try:
        extra = events.get(timeout=seconds)
    except queue.Empty:
        return
    raise AssertionError(f"unexpected extra event {extra}")


def test_data_watch_fires_once_on_set(zk: KazooClient, root: str) -> None:
    path = f"{root}/d"
    zk.create(path, b"0")
    events, cb = collector()
    zk.get(path, watch=cb)
    zk.set(path, b"1")
    event = events.get(timeout=WAIT)
    assert event.type == EventType.CHANGED
    assert event.path == path
    zk.set(path, b"2")  # the watch was one-shot
    assert_quiet(events)


def test_data_watch_set_by_other_client(
    zk: KazooClient, root: str, make_client: Callable[..., KazooClient]
) -> None:
    path = f"{root}/d"
    zk.create(path, b"0")
    other = make_client()
    other.sync(path)
    events, cb = collector()
    other.get(path, watch=cb)
    zk.set(path, b"1")
    assert events.get(timeout=WAIT).type == EventType.CHANGED
    assert other.get(path)[0] == b"1"  # the change is visible once the event arrived


def test_exists_watch_on_create_and_delete(zk: KazooClient, root: str) -> None:
    path = f"{root}/later"
    events, cb = collector()
    assert zk.exists(path, watch=cb) is None
    zk.create(path)
    event = events.get(timeout=WAIT)
    assert (event.type, event.path) == (EventType.CREATED, path)
    assert zk.exists(path, watch=cb) is not None
    zk.delete(path)
    event = events.get(timeout=WAIT)
    assert (event.type, event.path) == (EventType.DELETED, path)
    assert_quiet(events)


def test_data_watch_fires_on_delete(zk: KazooClient, root: str) -> None:
    path = f"{root}/d"
    zk.create(path)
    data_events, data_cb = collector()
    child_events, child_cb = collector()
    zk.get(path, watch=data_cb)
    zk.get_children(path, watch=child_cb)
    zk.delete(path)
    assert data_events.get(timeout=WAIT).type == EventType.DELETED
    assert child_events.get(timeout=WAIT).type == EventType.DELETED
    assert_quiet(data_events, 0.2)
    assert_quiet(child_events, 0.2)


def test_child_watch_on_create_and_delete(zk: KazooClient, root: str) -> None:
    events, cb = collector()
    assert zk.get_children(root, watch=cb) == []
    zk.create(f"{root}/c1")
    event = events.get(timeout=WAIT)
    assert (event.type, event.path) == (EventType.CHILD, root)
    assert zk.get_children(root, watch=cb) == ["c1"]
    zk.set(f"{root}/c1", b"x")  # data change of a child: no child event
    zk.set(root, b"x")  # data change of the parent: no child event
    assert_quiet(events)
    zk.delete(f"{root}/c1")
    event = events.get(timeout=WAIT)
    assert (event.type, event.path) == (EventType.CHILD, root)


def test_no_event_for_failed_operations(zk: KazooClient, root: str) -> None:
    path = f"{root}/d"
    zk.create(path, b"0")
    events, cb = collector()
    zk.get(path, watch=cb)
    zk.get_children(root, watch=cb)
    tx = zk.transaction()
    tx.set_data(path, b"1")
    tx.create(f"{root}/new")
    tx.check(path, 99)
    tx.commit()
    assert_quiet(events)


def test_data_watch_recipe(zk: KazooClient, root: str) -> None:
    path = f"{root}/dw"
    seen: queue.Queue[tuple[bytes | None, int | None]] = queue.Queue()

    @zk.DataWatch(path)
    def watcher(data: bytes | None, stat: object, event: WatchedEvent | None = None) -> None:
        seen.put((data, getattr(stat, "version", None)))

    assert seen.get(timeout=WAIT) == (None, None)  # called at once: node missing
    zk.create(path, b"a")
    assert seen.get(timeout=WAIT) == (b"a", 0)
    zk.set(path, b"b")
    assert seen.get(timeout=WAIT) == (b"b", 1)
    zk.set(path, b"c")
    assert seen.get(timeout=WAIT) == (b"c", 2)
    zk.delete(path)
    assert seen.get(timeout=WAIT) == (None, None)


def test_children_watch_recipe(zk: KazooClient, root: str) -> None:
    snapshots: list[list[str]] = []

    @zk.ChildrenWatch(root)
    def watcher(children: list[str]) -> None:
        snapshots.append(sorted(children))

    wait_until(lambda: snapshots == [[]], WAIT, "initial call")
    zk.create(f"{root}/a")
    wait_until(lambda: snapshots[-1] == ["a"], WAIT, "a")
    zk.create(f"{root}/b")
    wait_until(lambda: snapshots[-1] == ["a", "b"], WAIT, "a, b")
    zk.delete(f"{root}/a")
    wait_until(lambda: snapshots[-1] == ["b"], WAIT, "b")
    assert all(len(s) <= 2 for s in snapshots)


def test_watches_are_per_session(
    zk: KazooClient, root: str, make_client: Callable[..., KazooClient]
) -> None:
    """Every session that registered a watch gets its own event."""
    path = f"{root}/shared"
    zk.create(path, b"0")
    clients = [make_client() for _ in range(3)]
    queues = []
    for client in clients:
        events, cb = collector()
        client.sync(path)
        client.get(path, watch=cb)
        queues.append(events)
    zk.set(path, b"1")
    for events in queues:
        assert events.get(timeout=WAIT).type == EventType.CHANGED
