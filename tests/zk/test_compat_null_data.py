"""Kind 1 of issue #8: null data. The wire tells a null buffer (length -1) from an empty one,
and ZooKeeper keeps the difference everywhere: the tree, replies (getData, create2, multi and
multiRead results), replication and what a restarted server recovers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from controller.zk.constants import OpCode as Op
from controller.zk.records import (
    CreateRequest,
    GetChildrenRequest,
    GetDataRequest,
    MultiRequest,
    SetDataRequest,
    SyncRequest,
)
from tests.zk.conftest import Target
from tests.zk.raw import OPEN, RawClient, connect


def test_kazoo_create_and_set_none_read_back_none(zk: KazooClient, root: str) -> None:
    # kazoo's upstream test_create_null_data / test_set_null_data (+ gevent, eventlet).
    zk.create(f"{root}/null", None)
    data, stat = zk.get(f"{root}/null")
    assert data is None and stat.dataLength == 0
    zk.create(f"{root}/empty", b"")
    assert zk.get(f"{root}/empty")[0] == b""
    zk.set(f"{root}/empty", None)
    assert zk.get(f"{root}/empty")[0] is None
    zk.set(f"{root}/null", b"")
    assert zk.get(f"{root}/null")[0] == b""


def test_null_buffers_on_the_wire(raw: RawClient, base: str) -> None:
    r = raw.call(Op.CREATE2, CreateRequest(f"{base}/a", None, OPEN, 0))
    assert r.err == 0 and r.body.stat.data_length == 0
    assert raw.call(Op.GET_DATA, GetDataRequest(f"{base}/a", False)).body.data is None
    r = raw.call(Op.SET_DATA, SetDataRequest(f"{base}/a", b"x", -1))
    assert r.err == 0 and r.body.stat.data_length == 1
    raw.call(Op.SET_DATA, SetDataRequest(f"{base}/a", None, -1))
    assert raw.call(Op.GET_DATA, GetDataRequest(f"{base}/a", False)).body.data is None


def test_null_data_in_multi_and_multi_read(raw: RawClient, base: str) -> None:
    ops = [
        (Op.CREATE, CreateRequest(f"{base}/m1", None, OPEN, 0)),
        (Op.CREATE, CreateRequest(f"{base}/m2", b"", OPEN, 0)),
        (Op.SET_DATA, SetDataRequest(f"{base}/m2", None, -1)),
        (Op.CREATE, CreateRequest(f"{base}/m3", b"v", OPEN, 0)),
        (Op.SET_DATA, SetDataRequest(f"{base}/m3", b"", -1)),
    ]
    r = raw.call(Op.MULTI, MultiRequest(ops))
    assert [err for _, err, _ in r.body.results] == [0] * 5
    reads = [(Op.GET_DATA, GetDataRequest(f"{base}/m{i}", False)) for i in (1, 2, 3)]
    r = raw.call(Op.MULTI_READ, MultiRequest(reads))
    assert [body.data for _, _, body in r.body.results] == [None, None, b""]


@pytest.fixture
def restore(zk_target: Target) -> Iterator[Target]:
    yield zk_target
    zk_target.restart_all_dead()


def test_null_data_survives_replication_and_restart(
    restore: Target, raw: RawClient, base: str, make_client: Callable[..., KazooClient]
) -> None:
    raw.call(Op.CREATE, CreateRequest(f"{base}/null", None, OPEN, 0))
    raw.call(Op.CREATE, CreateRequest(f"{base}/empty", b"", OPEN, 0))
    killed = restore.kill_leader()  # the survivors have it from replication
    survivor = make_client()
    survivor.sync(base)
    assert survivor.get(f"{base}/null")[0] is None
    restore.restart_all_dead()  # the restarted server recovers it from its own disk
    client = connect(killed, retry_for=60)
    try:
        client.call(Op.SYNC, SyncRequest(base))
        assert client.call(Op.GET_CHILDREN, GetChildrenRequest(base, False)).err == 0
        assert client.call(Op.GET_DATA, GetDataRequest(f"{base}/null", False)).body.data is None
        assert client.call(Op.GET_DATA, GetDataRequest(f"{base}/empty", False)).body.data == b""
    finally:
        client.close()
