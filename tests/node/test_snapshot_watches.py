"""Issue #10, with real controller processes: a follower that catches up by installing the
leader's snapshot must still tell its connected clients about every change the snapshot
skipped over, on the same connection and session.

A raw ZooKeeper client (tests/zk/raw.py: no automatic reconnect, so no SetWatches can mask
the snapshot path) is connected to one follower F only and sets watches there. F is then
frozen with SIGSTOP while the rest of the quorum changes the watched nodes and writes enough
that the leader snapshots and compacts its log past those changes; after SIGCONT, F can only
catch up by installing a snapshot, and its watches must fire from that install.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from controller.localquorum import LocalQuorum
from controller.zk.constants import AddWatchMode, CreateMode, Err, EventType, OpCode
from controller.zk.records import (
    AddWatchRequest,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetChildrenRequest,
    GetDataRequest,
    SetDataRequest,
)
from tests.node.helpers import status, wait_until
from tests.quorums import checked_quorum
from tests.zk.raw import OPEN, RawClient

pytestmark = pytest.mark.timeout(120)

SNAPSHOT_EVERY = 50  # --snapshot-interval-entries on every controller
SESSION_MS = 30_000  # far longer than F stays frozen: the session must not expire
# Writes before the watched changes, so that they lie beyond the appends the leader can have
# pipelined to the frozen F (at most MAX_INFLIGHT_APPENDS = 64 one-entry appends), and after
# them, so that the leader snapshots and compacts past them.
FILL_BEFORE = 200
FILL_AFTER = 4 * SNAPSHOT_EVERY

CREATED = int(EventType.NODE_CREATED)
DELETED = int(EventType.NODE_DELETED)
CHANGED = int(EventType.NODE_DATA_CHANGED)
CHILDREN = int(EventType.NODE_CHILDREN_CHANGED)


def ok(client: RawClient, op: OpCode, record: object, allowed: int = 0) -> None:
    reply = client.call(int(op), record)
    assert reply.err in (0, allowed), (op.name, record, Err(reply.err).name)


def create(client: RawClient, path: str, data: bytes = b"", flags: int = 0) -> None:
    ok(client, OpCode.CREATE, CreateRequest(path, data, OPEN, flags))


def set_data(client: RawClient, path: str, data: bytes) -> None:
    ok(client, OpCode.SET_DATA, SetDataRequest(path, data, -1))


@contextmanager
def frozen(q: LocalQuorum, node_id: int) -> Iterator[None]:
    """Controller `node_id` stopped (SIGSTOP) inside the block, resumed on the way out."""
    pid = q.pid(node_id)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def events_of(client: RawClient) -> Counter[tuple[int, str]]:
    return Counter((e.type, e.path) for e in client.events)


def wait_for_events(
    client: RawClient, expected: Counter[tuple[int, str]], timeout: float
) -> Counter[tuple[int, str]]:
    """Ping until every expected notification arrived (or `timeout`); what arrived."""
    deadline = time.monotonic() + timeout
    while True:
        client.ping()  # reads every notification the server sent before the pong
        seen = events_of(client)
        if not expected - seen or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def installed_snapshot_indexes(log: Path) -> list[int]:
    return [int(m) for m in re.findall(r"installed snapshot at index (\d+)", log.read_text())]


def test_watches_fire_after_a_follower_installs_a_snapshot(tmp_path: Path) -> None:
    data = tmp_path / "q"
    options = {"extra_args": ["--snapshot-interval-entries", str(SNAPSHOT_EVERY)]}
    with checked_quorum(data, fsync=False, log_level="INFO", **options) as q:
        q.wait_until_ready()
        leader_id = q.wait_for_leader()["node_id"]
        f = next(i for i in q.ids if i != leader_id)
        f_admin = q.client_address(f)
        leader_admin = q.client_address(leader_id)

        # The watcher knows F only; the writer talks to the leader.
        watcher = RawClient(str(q.client_address(f)), timeout_ms=SESSION_MS, io_timeout=30)
        writer = RawClient(str(leader_admin), timeout_ms=SESSION_MS, io_timeout=30)
        try:
            session = watcher.session.session_id
            # Created through F: each reply comes once F has applied the create.
            for path in ("/w", "/gone", "/still", "/p", "/p/x", "/fill"):
                create(watcher, path, b"0")
            create(watcher, "/eph", b"", int(CreateMode.EPHEMERAL))

            ok(watcher, OpCode.GET_DATA, GetDataRequest("/w", True))
            ok(watcher, OpCode.GET_CHILDREN, GetChildrenRequest("/w", True))
            ok(watcher, OpCode.EXISTS, ExistsRequest("/new", True), allowed=Err.NONODE)
            ok(watcher, OpCode.GET_DATA, GetDataRequest("/gone", True))
            ok(watcher, OpCode.GET_DATA, GetDataRequest("/still", True))
            mode = int(AddWatchMode.PERSISTENT_RECURSIVE)
            ok(watcher, OpCode.ADD_WATCH, AddWatchRequest("/p", mode))
            watcher.ping()
            assert watcher.events == []
            installed_before = status(f_admin)["snapshots_installed"]

            with frozen(q, f):
                for i in range(FILL_BEFORE):
                    create(writer, f"/fill/a{i}")
                set_data(writer, "/w", b"1")
                create(writer, "/w/kid")
                create(writer, "/new")
                ok(writer, OpCode.DELETE, DeleteRequest("/gone", -1))
                set_data(writer, "/p/x", b"1")
                create(writer, "/p/y")
                changed_at = status(leader_admin)["commit_index"]
                for i in range(FILL_AFTER):
                    create(writer, f"/fill/b{i}")
                # The leader's log no longer holds the changes: F needs its snapshot.
                assert status(leader_admin)["first_index"] > changed_at

            expected = Counter(
                {
                    (CHANGED, "/w"): 1,
                    (CHILDREN, "/w"): 1,
                    (CREATED, "/new"): 1,
                    (DELETED, "/gone"): 1,
                    (CHANGED, "/p/x"): 1,
                    (CREATED, "/p/y"): 1,
                }
            )
            seen = wait_for_events(watcher, expected, timeout=30)
            st = status(f_admin)
            assert st["snapshots_installed"] > installed_before, "F did not install a snapshot"
            snapshots = installed_snapshot_indexes(data / f"node-{f}.log")
            assert snapshots and max(snapshots) >= changed_at, (snapshots, changed_at)
            assert seen == expected, f"notifications after the snapshot install: {seen}"

            # Same connection, same session, and still usable: the session was not expired.
            assert watcher.session.session_id == session
            reply = writer.call(int(OpCode.EXISTS), ExistsRequest("/eph", False))
            assert reply.err == 0 and reply.body.stat.ephemeral_owner == session

            # The untouched node's watch survived the install; the fired one-shot watch on
            # /w was consumed (entries now apply one by one, in order: /w before /still).
            set_data(writer, "/w", b"2")
            set_data(writer, "/still", b"1")
            seen = wait_for_events(watcher, expected + Counter({(CHANGED, "/still"): 1}), 15)
            assert seen == expected + Counter({(CHANGED, "/still"): 1})
            wait_until(lambda: status(f_admin)["applied_index"] >= changed_at, what="F applied")
            assert watcher.unexpected == []
        finally:
            watcher.close()
            writer.close()


def test_a_session_expired_during_the_gap_is_closed_by_the_install(tmp_path: Path) -> None:
    data = tmp_path / "q"
    options = {"extra_args": ["--snapshot-interval-entries", str(SNAPSHOT_EVERY)]}
    with checked_quorum(data, fsync=False, log_level="INFO", **options) as q:
        q.wait_until_ready()
        leader_id = q.wait_for_leader()["node_id"]
        f = next(i for i in q.ids if i != leader_id)
        f_admin = q.client_address(f)
        leader_admin = q.client_address(leader_id)
        # The shortest session the controllers grant (2 ticks of 2 s): it expires while F
        # is frozen, since F's client cannot reach it to ping.
        short = RawClient(str(f_admin), timeout_ms=4000, io_timeout=30)
        writer = RawClient(str(leader_admin), timeout_ms=SESSION_MS, io_timeout=30)
        try:
            create(short, "/eph", b"", int(CreateMode.EPHEMERAL))
            create(short, "/fill")
            installed_before = status(f_admin)["snapshots_installed"]
            with frozen(q, f):
                for i in range(FILL_BEFORE):
                    create(writer, f"/fill/a{i}")
                deadline = time.monotonic() + 20
                while writer.call(int(OpCode.EXISTS), ExistsRequest("/eph", False)).err == 0:
                    if time.monotonic() > deadline:
                        pytest.fail("the leader did not expire the frozen client's session")
                    time.sleep(0.1)
                expired_at = status(leader_admin)["commit_index"]
                for i in range(FILL_AFTER):
                    create(writer, f"/fill/b{i}")
            try:
                wait_until(
                    lambda: status(f_admin)["snapshots_installed"] > installed_before,
                    what="F installs a snapshot",
                )
            except AssertionError as exc:
                pytest.fail(str(exc))
            snapshots = installed_snapshot_indexes(data / f"node-{f}.log")
            if not snapshots or max(snapshots) < expired_at:
                pytest.fail(f"the expiry was not inside the snapshot: {snapshots} {expired_at}")
            # ZooKeeper would have dropped the connection; the client then learns of the
            # expiry when it reconnects.
            assert short.is_closed(wait=3), "F still serves a session that expired"
        finally:
            short.close()
            writer.close()
