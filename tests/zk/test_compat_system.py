"""Kind 5 of issue #8: the /zookeeper system subtree. Its nodes cannot be deleted,
/zookeeper/config describes the ensemble, and quota usage under /zookeeper/quota is kept up
to date by every create, delete and setData (on every server: it is replicated state)."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable

import pytest

from controller.zk.constants import Err
from controller.zk.constants import OpCode as Op
from controller.zk.records import (
    ACL,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetDataRequest,
    Id,
    MultiRequest,
    SetDataRequest,
    SyncRequest,
)
from tests.zk.conftest import Target
from tests.zk.raw import OPEN, RawClient

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
needs_zkcli = pytest.mark.skipif(
    not (os.access(ZKCLI, os.X_OK) and os.path.exists("/usr/bin/java")),
    reason="zkCli.sh (Debian zookeeper package) or java is missing",
)


@pytest.mark.parametrize("path", ["/zookeeper/config", "/zookeeper/quota", "/zookeeper", "/"])
def test_system_nodes_cannot_be_deleted(raw: RawClient, path: str) -> None:
    assert raw.call(Op.DELETE, DeleteRequest(path, -1)).err == Err.BADARGUMENTS
    assert raw.call(Op.DELETE, DeleteRequest(path, 3)).err == Err.BADARGUMENTS
    r = raw.call(Op.MULTI, MultiRequest([(Op.DELETE, DeleteRequest(path, -1))]))
    assert r.body.results[0][1] == Err.BADARGUMENTS
    assert raw.call(Op.EXISTS, ExistsRequest(path, False)).err == 0


def test_config_node(raw: RawClient, zk_target: Target) -> None:
    r = raw.call(Op.GET_DATA, GetDataRequest("/zookeeper/config", False))
    lines = r.body.data.decode().split("\n")
    servers = lines[:-1]
    assert len(servers) == len(zk_target.servers)
    for n, line in enumerate(servers, 1):
        assert re.fullmatch(rf"server\.{n}=[^:=]+:\d+:\d+:participant", line), lines
    assert re.fullmatch(r"version=[0-9a-f]+", lines[-1]), lines
    stat = r.body.stat
    assert (stat.version, stat.aversion, stat.czxid) == (-1, -1, 0)
    acl = raw.call(Op.GET_ACL, GetACLRequest("/zookeeper/config")).body.acl
    assert acl == [ACL(1, Id("world", "anyone"))]  # read-only for everyone
    assert raw.call(Op.SET_DATA, SetDataRequest("/zookeeper/config", b"", -1)).err == Err.NOAUTH
    create = CreateRequest("/zookeeper/config/x", b"", OPEN, 0)
    assert raw.call(Op.CREATE, create).err == Err.NOAUTH


def test_zookeeper_node_stat(raw: RawClient) -> None:
    # Two children it never created: DataNode.copyStat reports cversion 0 * 2 - 2.
    stat = raw.call(Op.EXISTS, ExistsRequest("/zookeeper", False)).body.stat
    assert (stat.cversion, stat.num_children, stat.czxid, stat.version) == (-2, 2, 0, 0)


def zkcli(server: str, script: str) -> list[str]:
    result = subprocess.run(
        [ZKCLI, "-server", server], input=script, capture_output=True, text=True, timeout=90
    )
    return (result.stdout + "\n" + result.stderr).splitlines()


@needs_zkcli
def test_zkcli_config_prints_the_servers(zk_target: Target) -> None:
    out = zkcli(zk_target.servers[0], "config\nquit\n")
    servers = [line for line in out if re.fullmatch(r"server\.\d+=\S+:participant", line)]
    assert len(servers) == len(zk_target.servers), out
    assert any(re.fullmatch(r"version=[0-9a-f]+", line) for line in out), out


@needs_zkcli
def test_zkcli_quota_usage(zk_target: Target) -> None:
    q = f"/q-{uuid.uuid4().hex[:8]}"
    value = "v" * 80
    script = (
        f"create {q}\nsetquota -n 5 {q}\ncreate {q}/a\ncreate {q}/b\ncreate {q}/c\n"
        f"set {q}/a {value}\nlistquota {q}\ndelete {q}/b\nlistquota {q}\nquit\n"
    )
    out = zkcli(zk_target.servers[0], script)
    stats = [line for line in out if line.startswith(f"Output stat for {q} ")]
    assert stats == [
        f"Output stat for {q} count=4,bytes=80",
        f"Output stat for {q} count=3,bytes=80",
    ]
    limits = [line for line in out if line.startswith(f"Output quota for {q} ")]
    assert limits and limits[0].startswith(f"Output quota for {q} count=5,bytes=-1"), out


def quota_stats(client: RawClient, path: str) -> bytes:
    client.call(Op.SYNC, SyncRequest(path))
    r = client.call(Op.GET_DATA, GetDataRequest(f"/zookeeper/quota{path}/zookeeper_stats", False))
    data: bytes = r.body.data
    return data


def test_quota_stats_follow_every_change_on_every_server(
    make_raw: Callable[..., RawClient], zk_target: Target
) -> None:
    raw = make_raw()
    q = f"/qr-{uuid.uuid4().hex[:8]}"

    def call(op: int, record: object) -> int:
        return raw.call(op, record).err

    assert call(Op.CREATE, CreateRequest(q, b"12345", OPEN, 0)) == 0
    assert call(Op.CREATE, CreateRequest(f"{q}/old", b"abc", OPEN, 0)) == 0
    assert call(Op.CREATE, CreateRequest(f"/zookeeper/quota{q}", None, OPEN, 0)) == 0
    limits = CreateRequest(f"/zookeeper/quota{q}/zookeeper_limits", b"count=2,bytes=10", OPEN, 0)
    assert call(Op.CREATE, limits) == 0
    # Created with zeros, the stats node starts from what the subtree already uses.
    stats = CreateRequest(f"/zookeeper/quota{q}/zookeeper_stats", b"count=0,bytes=0", OPEN, 0)
    assert call(Op.CREATE, stats) == 0
    assert quota_stats(raw, q) == b"count=2,bytes=8"
    ops = [
        (Op.CREATE, CreateRequest(f"{q}/n", None, OPEN, 0)),  # null data: 0 bytes
        (Op.CREATE, CreateRequest(f"{q}/n/deep", b"0123456789", OPEN, 3)),
        (Op.SET_DATA, SetDataRequest(f"{q}/old", b"a", -1)),
    ]
    assert [e for _, e, _ in raw.call(Op.MULTI, MultiRequest(ops)).body.results] == [0, 0, 0]
    assert quota_stats(raw, q) == b"count=4,bytes=16"  # over the limits: only logged
    failing = [*ops[:1], (Op.DELETE, DeleteRequest(f"{q}/missing", -1))]
    raw.call(Op.MULTI, MultiRequest(failing))  # rolled back, usage included
    assert call(Op.DELETE, DeleteRequest(f"{q}/old", -1)) == 0
    assert call(Op.SET_DATA, SetDataRequest(q, None, -1)) == 0
    for server in zk_target.servers:  # replicated state: the same everywhere
        assert quota_stats(make_raw(server), q) == b"count=3,bytes=10", server
    # Without its limits node the quota is gone and usage no longer tracked.
    assert call(Op.DELETE, DeleteRequest(f"/zookeeper/quota{q}/zookeeper_limits", -1)) == 0
    assert call(Op.CREATE, CreateRequest(f"{q}/later", b"xyz", OPEN, 0)) == 0
    assert quota_stats(raw, q) == b"count=3,bytes=10"
