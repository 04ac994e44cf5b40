"""Tree ops as ZooKeeper multi requests (`controller.metadata.zkops`), multi results, and
which znodes the metadata reader walks."""

from __future__ import annotations

import pytest

from controller.metadata.ops import CheckOp, CreateOp, DeleteOp, SetDataOp
from controller.metadata.zkops import multi_request, to_multi
from controller.metadata_client import _descend, _wanted, multi_failure, new_uuid
from controller.zk.constants import CreateMode, Err, OpCode
from controller.zk.jute import Reader, Writer
from controller.zk.records import (
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    MultiRequest,
    SetDataRequest,
)


def test_to_multi_maps_each_op_in_order() -> None:
    ops = [
        CreateOp("/a", b"x"),
        CreateOp("/brokers/ids/1", b"{}", ephemeral=True),
        SetDataOp("/a", b"y", 3),
        DeleteOp("/b"),
        CheckOp("/controller_epoch", 7),
    ]
    multi = to_multi(ops)
    assert [op for op, _ in multi] == [
        OpCode.CREATE, OpCode.CREATE, OpCode.SET_DATA, OpCode.DELETE, OpCode.CHECK
    ]  # fmt: skip
    create, ephemeral, set_data, delete, check = (record for _, record in multi)
    assert isinstance(create, CreateRequest) and create.flags == CreateMode.PERSISTENT
    assert (create.path, create.data) == ("/a", b"x")
    assert create.acl and create.acl[0].perms == 31 and create.acl[0].id.scheme == "world"
    assert isinstance(ephemeral, CreateRequest) and ephemeral.flags == CreateMode.EPHEMERAL
    assert set_data == SetDataRequest("/a", b"y", 3)
    assert delete == DeleteRequest("/b", -1)
    assert check == CheckVersionRequest("/controller_epoch", 7)


def test_multi_request_round_trips_through_jute() -> None:
    request = multi_request([CreateOp("/a", b"x"), SetDataOp("/a", b"y", 0)])
    w = Writer()
    request.write(w)
    assert MultiRequest.read(Reader(w.getvalue())) == request


def test_multi_failure_names_the_failing_op() -> None:
    ok = [(1, 0, None), (5, 0, None)]
    assert multi_failure(ok) is None
    failed = [(-1, 0, None), (-1, Err.NODEEXISTS, None), (-1, Err.RUNTIMEINCONSISTENCY, None)]
    assert multi_failure(failed) == (1, Err.NODEEXISTS)


@pytest.mark.parametrize(
    ("path", "descend"),
    [
        ("/brokers", True),
        ("/brokers/ids", True),
        ("/brokers/ids/1", False),
        ("/brokers/seqid", False),
        ("/brokers/topics", True),
        ("/brokers/topics/t", True),
        ("/brokers/topics/t/partitions", True),
        ("/brokers/topics/t/partitions/0", True),
        ("/brokers/topics/t/partitions/0/state", False),
        ("/config", True),
        ("/config/topics", True),
        ("/config/changes", False),
        ("/admin", True),
        ("/admin/delete_topics", True),
        ("/admin/controlled_shutdown", True),
        ("/admin/preferred_replica_election", False),
        ("/controller", False),
    ],
)
def test_reader_walks_only_the_layout(path: str, descend: bool) -> None:
    assert _descend(path.split("/")[1:], None) is descend


def test_reader_topic_filter() -> None:
    only = {"t"}
    assert _wanted(["brokers", "topics", "t"], only)
    assert not _wanted(["brokers", "topics", "u"], only)
    assert not _wanted(["config", "topics", "u"], only)
    assert _wanted(["brokers", "ids", "1"], only)
    assert not _descend(["brokers", "topics", "u"], only)


def test_new_uuid_is_kafka_text_form() -> None:
    ids = {new_uuid() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 22 and "=" not in i and "+" not in i and "/" not in i for i in ids)
