"""Kind 2 of issue #8: removeWatches/checkWatches answer like ZooKeeper 3.8 and send nothing
else. The server only replies; "watch removed" events are made by the client library, and
Apache's Java client treats any extra frame as a protocol error (connection loss)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable

import pytest

from controller.zk.constants import Err
from controller.zk.constants import OpCode as Op
from controller.zk.records import (
    AddWatchRequest,
    CreateRequest,
    ExistsRequest,
    GetChildrenRequest,
    GetDataRequest,
    RemoveWatchesRequest,
)
from tests.zk.conftest import Target
from tests.zk.raw import OPEN, RawClient

CHILDREN, DATA, ANY = 1, 2, 3


def remove(client: RawClient, path: str, kind: int) -> int:
    return client.call(Op.REMOVE_WATCHES, RemoveWatchesRequest(path, kind)).err


def check(client: RawClient, path: str, kind: int) -> int:
    return client.call(Op.CHECK_WATCHES, RemoveWatchesRequest(path, kind)).err


@pytest.mark.parametrize("kind", [CHILDREN, DATA, ANY])
def test_remove_watches_only_replies(raw: RawClient, base: str, kind: int) -> None:
    raw.call(Op.GET_DATA, GetDataRequest(base, True))
    raw.call(Op.GET_CHILDREN, GetChildrenRequest(base, True))
    assert check(raw, base, kind) == 0
    assert remove(raw, base, kind) == 0
    raw.ping()  # anything the server sent after the reply has arrived by now
    assert raw.events == [] and raw.unexpected == []
    assert remove(raw, base, kind) == Err.NOWATCHER
    left = {CHILDREN: DATA, DATA: CHILDREN, ANY: None}[kind]
    if left is not None:  # the other kind is still armed, and fires
        assert remove(raw, base, left) == 0


@pytest.mark.parametrize("kind", [0, 4, 5, 6, -1])
def test_unknown_watcher_type_is_a_marshalling_error(raw: RawClient, base: str, kind: int) -> None:
    # WatcherType.fromInt throws in 3.8 (it knows 1-3), FinalRequestProcessor answers
    # MARSHALLINGERROR, whether or not a watch exists.
    raw.call(Op.GET_DATA, GetDataRequest(base, True))
    assert remove(raw, base, kind) == Err.MARSHALLINGERROR
    assert check(raw, base, kind) == Err.MARSHALLINGERROR
    assert remove(raw, base, DATA) == 0


def test_exist_watches_are_data_watches(raw: RawClient, base: str) -> None:
    raw.call(Op.EXISTS, ExistsRequest(f"{base}/missing", True))
    assert check(raw, f"{base}/missing", CHILDREN) == Err.NOWATCHER
    assert check(raw, f"{base}/missing", DATA) == 0
    assert remove(raw, f"{base}/missing", CHILDREN) == Err.NOWATCHER
    assert remove(raw, f"{base}/missing", DATA) == 0


@pytest.mark.parametrize("mode", [0, 1])
def test_persistent_watches_have_a_data_and_a_child_half(
    raw: RawClient, base: str, mode: int
) -> None:
    assert raw.call(Op.ADD_WATCH, AddWatchRequest(base, mode)).body.err == 0
    assert check(raw, base, DATA) == 0 and check(raw, base, CHILDREN) == 0
    assert remove(raw, base, DATA) == 0
    assert check(raw, base, CHILDREN) == 0  # still in the child watch manager
    raw.call(Op.CREATE, CreateRequest(f"{base}/c", b"", OPEN, 0))
    raw.ping()
    if mode == 0:  # persistent: the child half still sees NodeChildrenChanged
        assert [(e.type, e.path) for e in raw.events] == [(4, base)]
    else:  # recursive watches never get NodeChildrenChanged; the data half is gone
        assert raw.events == []
    assert remove(raw, base, ANY) == 0
    assert remove(raw, base, ANY) == Err.NOWATCHER


@pytest.mark.parametrize("mode", [2, -1])
def test_unknown_add_watch_mode_is_a_marshalling_error(
    raw: RawClient, base: str, mode: int
) -> None:
    assert raw.call(Op.ADD_WATCH, AddWatchRequest(base, mode)).err == Err.MARSHALLINGERROR
    assert check(raw, base, ANY) == Err.NOWATCHER


def test_check_and_remove_do_not_validate_the_path(raw: RawClient, base: str) -> None:
    for path in (f"{base}/", "//", "/.", "/a\x00b", "/\U0001f600"):
        assert raw.call(Op.ADD_WATCH, AddWatchRequest(path, 0)).err == 0
        assert check(raw, path, ANY) == 0
        assert remove(raw, path, ANY) == 0
        assert check(raw, path, ANY) == Err.NOWATCHER
    # checkWatches walks no path at all for "": never a watcher there.
    assert raw.call(Op.ADD_WATCH, AddWatchRequest("", 0)).err == 0
    assert check(raw, "", ANY) == Err.NOWATCHER
    assert remove(raw, "", ANY) == 0
    # A non-empty path without '/' breaks ZooKeeper's parent-path iterator in checkWatches.
    assert raw.call(Op.ADD_WATCH, AddWatchRequest("nolead", 0)).err == 0
    assert check(raw, "nolead", ANY) == Err.MARSHALLINGERROR
    assert remove(raw, "nolead", ANY) == 0


def test_check_watches_sees_other_connections_watches(
    make_raw: Callable[..., RawClient], base: str
) -> None:
    # ZooKeeper 3.8's WatchManager.containsWatcher: "at the leaf node, all watcher types
    # match", so checkWatches answers for any connection's watch on the path.
    owner, other = make_raw(), make_raw()
    owner.call(Op.GET_DATA, GetDataRequest(base, True))
    assert check(other, base, DATA) == 0
    assert remove(other, base, DATA) == Err.NOWATCHER
    assert remove(owner, base, DATA) == 0


ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"


@pytest.mark.skipif(
    not (os.access(ZKCLI, os.X_OK) and os.path.exists("/usr/bin/java")),
    reason="zkCli.sh (Debian zookeeper package) or java is missing",
)
def test_zkcli_get_watch_then_removewatches_stays_connected(zk_target: Target) -> None:
    path = f"/rw-{uuid.uuid4().hex[:8]}"
    script = f"create {path} hello\nget -w {path}\nremovewatches {path} -d\nget {path}\nquit\n"
    result = subprocess.run(
        [ZKCLI, "-server", zk_target.servers[0]],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout + result.stderr
    assert "ConnectionLoss" not in out and "state:Disconnected" not in out, out
    # The client library's own event for the removed watch, then the next command works.
    assert f"type:DataWatchRemoved path:{path}" in out, out
    lines = [line for line in result.stdout.splitlines() if line == "hello"]
    assert len(lines) == 2, out
