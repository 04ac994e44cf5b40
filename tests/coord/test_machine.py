"""The coordination state machine, driven through log entries exactly as controllers do."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.coord.acl import digest_id
from controller.coord.commands import (
    Applied,
    Barrier,
    CloseSession,
    Command,
    CreateSession,
    Stamp,
    Write,
    decode_entry,
    encode_command,
    stamp,
)
from controller.coord.machine import CoordStateMachine
from controller.raft.types import Entry, EntryKind, make_zxid
from controller.zk.constants import CreateMode, Err, EventType, OpCode
from controller.zk.records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    Id,
    MultiRequest,
    MultiResponse,
    SetACLRequest,
    SetDataRequest,
)

OPEN = [ACL(31, Id("world", "anyone"))]
WORLD = (("ip", "127.0.0.1"),)


class Harness:
    """Feeds commands to a machine as consecutive log entries."""

    def __init__(self, *, extended_types: bool = False) -> None:
        self.sm = CoordStateMachine()
        self.extended_types = extended_types
        self.index = itertools.count(1)
        self.seq = itertools.count(1)
        self.time = 1_000

    def apply(self, cmd: Command, time_ms: int | None = None) -> Applied:
        i = next(self.index)
        at = Stamp(self.time if time_ms is None else time_ms, self.extended_types)
        data = stamp(encode_command(cmd), at)
        assert decode_entry(data) == (at, cmd)
        result = self.sm.apply(Entry(1, i, make_zxid(1, i), EntryKind.COMMAND, data))
        assert isinstance(result, Applied)
        return result

    def session(self, timeout: int = 10_000) -> int:
        result = self.apply(CreateSession(1, next(self.seq), timeout, b"p" * 16))
        return result.session_id

    def write(self, sid: int, op: int, record: object, ids: tuple = WORLD) -> Applied:
        self.time += 1
        return self.apply(Write(1, next(self.seq), sid, op, record, ids))

    def create(
        self, sid: int, path: str, data: bytes | None = b"", mode: int = 0, acl=OPEN
    ) -> Applied:
        return self.write(sid, OpCode.CREATE, CreateRequest(path, data, acl, mode))


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_create_get_set_delete_with_versions(h: Harness) -> None:
    sid = h.session()
    r = h.create(sid, "/a", b"one")
    assert r.err == 0 and r.response.path == "/a"
    assert (EventType.NODE_CREATED, "/a") in r.events
    node = h.sm.tree.get("/a")
    stat = node.stat()
    assert stat.czxid == stat.mzxid == stat.pzxid == r.zxid and stat.version == 0
    assert h.write(sid, OpCode.SET_DATA, SetDataRequest("/a", b"two", 5)).err == Err.BADVERSION
    r = h.write(sid, OpCode.SET_DATA, SetDataRequest("/a", b"two", 0))
    assert r.err == 0 and r.response.stat.version == 1 and r.response.stat.data_length == 3
    assert h.create(sid, "/a").err == Err.NODEEXISTS
    assert h.create(sid, "/missing/child").err == Err.NONODE
    h.create(sid, "/a/b")
    assert h.write(sid, OpCode.DELETE, DeleteRequest("/a", -1)).err == Err.NOTEMPTY
    assert h.write(sid, OpCode.DELETE, DeleteRequest("/a/b", 3)).err == Err.BADVERSION
    assert h.write(sid, OpCode.DELETE, DeleteRequest("/a/b", 0)).err == 0
    assert h.sm.tree.get("/a").stat().num_children == 0


@pytest.mark.parametrize(
    ("path", "err"),
    [
        ("a", Err.BADARGUMENTS),  # no '/': no parent to look up
        ("", Err.BADARGUMENTS),
        ("/a\x00b", Err.BADARGUMENTS),
        ("//a", Err.BADARGUMENTS),  # parent "/" exists, then the name is invalid
        ("/\U0001f600", Err.BADARGUMENTS),  # outside the BMP: surrogates for Java
        ("/a/", Err.NONODE),  # ZooKeeper looks the parent up first
        ("/a/./b", Err.NONODE),
        ("/a/../b", Err.NONODE),
    ],
)
def test_invalid_paths_follow_zookeepers_order_of_checks(h: Harness, path: str, err: int) -> None:
    sid = h.session()
    assert h.create(sid, path).err == err


def test_sequential_names_come_from_parent_cversion_and_are_not_reused(h: Harness) -> None:
    sid = h.session()
    h.create(sid, "/q")
    names = [h.create(sid, "/q/n-", mode=CreateMode.PERSISTENT_SEQUENTIAL).response.path
             for _ in range(3)]  # fmt: skip
    assert names == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    h.write(sid, OpCode.DELETE, DeleteRequest(names[-1], -1))
    again = h.create(sid, "/q/n-", mode=CreateMode.PERSISTENT_SEQUENTIAL).response.path
    assert again == "/q/n-0000000003"


def test_ephemerals_belong_to_their_session_and_go_with_it(h: Harness) -> None:
    a, b = h.session(), h.session()
    assert a != b
    h.create(a, "/e", mode=CreateMode.EPHEMERAL)
    assert h.sm.tree.get("/e").stat().ephemeral_owner == a
    assert h.create(a, "/e/child").err == Err.NOCHILDRENFOREPHEMERALS
    h.create(b, "/keep", mode=CreateMode.EPHEMERAL)
    r = h.apply(CloseSession(1, 99, a, True))
    assert r.closed_session and (EventType.NODE_DELETED, "/e") in r.events
    assert h.sm.tree.find("/e") is None and h.sm.tree.find("/keep") is not None
    assert a not in h.sm.sessions
    assert h.create(a, "/x").err == Err.SESSIONEXPIRED


def test_container_goes_with_its_last_child(h: Harness) -> None:
    sid = h.session()
    r = h.write(sid, OpCode.CREATE_CONTAINER, CreateRequest("/c", b"", OPEN, CreateMode.CONTAINER))
    assert r.err == 0
    h.create(sid, "/c/x")
    r = h.write(sid, OpCode.DELETE, DeleteRequest("/c/x", -1))
    assert (EventType.NODE_DELETED, "/c") in r.events
    assert h.sm.tree.find("/c") is None


def test_multi_is_atomic_with_zookeeper_error_reporting(h: Harness) -> None:
    sid = h.session()
    h.create(sid, "/m")
    ops = [
        (OpCode.CREATE, CreateRequest("/m/a", b"", OPEN, 0)),
        (OpCode.CHECK, CheckVersionRequest("/m", 7)),
        (OpCode.SET_DATA, SetDataRequest("/m", b"x", -1)),
    ]
    r = h.write(sid, OpCode.MULTI, MultiRequest(ops))
    assert r.err == 0 and isinstance(r.response, MultiResponse)
    assert [(t, e) for t, e, _ in r.response.results] == [
        (-1, 0),
        (-1, Err.BADVERSION),
        (-1, Err.RUNTIMEINCONSISTENCY),
    ]
    assert h.sm.tree.find("/m/a") is None and r.events == ()
    ok = h.write(
        sid,
        OpCode.MULTI,
        MultiRequest([ops[0], (OpCode.CHECK, CheckVersionRequest("/m", 0)), ops[2]]),
    )
    assert [(t, e) for t, e, _ in ok.response.results] == [(1, 0), (13, 0), (5, 0)]
    assert h.sm.tree.get("/m").data == b"x"
    zxids = {h.sm.tree.get("/m/a").czxid, h.sm.tree.get("/m").mzxid}
    assert zxids == {ok.zxid}


def test_acls_digest_auth_and_super(h: Harness) -> None:
    sid = h.session()
    alice = (("digest", digest_id("alice:secret")),)
    assert h.create(sid, "/private", b"s", acl=[ACL(31, Id("auth", ""))]).err == Err.INVALIDACL
    r = h.write(
        sid, OpCode.CREATE, CreateRequest("/private", b"s", [ACL(31, Id("auth", ""))], 0), alice
    )
    assert r.err == 0
    assert h.sm.tree.get("/private").acl == (ACL(31, Id("digest", digest_id("alice:secret"))),)
    assert h.write(sid, OpCode.SET_DATA, SetDataRequest("/private", b"x", -1)).err == Err.NOAUTH
    assert h.write(sid, OpCode.SET_DATA, SetDataRequest("/private", b"x", -1), alice).err == 0
    su = (("super", ""),)
    r = h.write(sid, OpCode.SET_ACL, SetACLRequest("/private", OPEN, -1), su)
    assert r.err == 0 and r.response.stat.aversion == 1
    assert h.write(sid, OpCode.SET_ACL, SetACLRequest("/private", [], -1), su).err == Err.INVALIDACL


def test_snapshot_restore_roundtrip(h: Harness) -> None:
    sid = h.session()
    h.create(sid, "/s", b"1")
    h.create(sid, "/s/e", mode=CreateMode.EPHEMERAL)
    copy = CoordStateMachine()
    copy.restore(h.sm.snapshot())
    assert copy.tree.nodes == h.sm.tree.nodes
    assert copy.tree.ephemerals == h.sm.tree.ephemerals
    assert set(copy.sessions) == set(h.sm.sessions)
    assert copy.last_zxid == h.sm.last_zxid


def test_barrier_changes_nothing(h: Harness) -> None:
    before = h.sm.snapshot()
    r = h.apply(Barrier(2, 5))
    assert (r.origin, r.seq, r.err) == (2, 5, 0)
    assert CoordStateMachine().restore(before) is None


names = st.sampled_from(["a", "b", "c"])
paths = st.lists(names, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))
ops = st.one_of(
    st.tuples(st.just("create"), paths, st.sampled_from([0, 1, 2, 3])),
    st.tuples(st.just("delete"), paths, st.sampled_from([-1, 0, 1])),
    st.tuples(st.just("set"), paths, st.sampled_from([-1, 0, 1])),
    st.tuples(st.just("close"), st.just(""), st.just(0)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(ops, max_size=25))
def test_replicas_agree_and_invariants_hold(script: list[tuple[str, str, int]]) -> None:
    """Two machines fed the same entries stay identical; tree invariants always hold."""
    h1, h2 = Harness(), Harness()
    for h in (h1, h2):
        sid = h.session()
        for kind, path, arg in script:
            if kind == "create":
                h.create(sid, path, b"d", mode=arg)
            elif kind == "delete":
                h.write(sid, OpCode.DELETE, DeleteRequest(path, arg))
            elif kind == "set":
                h.write(sid, OpCode.SET_DATA, SetDataRequest(path, b"v", arg))
            else:
                h.apply(CloseSession(1, 0, sid, False), time_ms=0)
                sid = h.session()
    assert h1.sm.snapshot() == h2.sm.snapshot()
    tree = h1.sm.tree
    for path, node in tree.nodes.items():
        for child in node.children:
            assert (path.rstrip("/") + "/" + child) in tree.nodes
        owner = node.session_owner
        if owner:
            assert owner in h1.sm.sessions and path in tree.ephemerals[owner]
            assert not node.children
    for sid, eph in tree.ephemerals.items():
        assert sid in h1.sm.sessions and all(tree.nodes[p].session_owner == sid for p in eph)


def test_ttl_nodes_expire_only_when_idle_and_childless() -> None:
    from controller.coord.commands import ExpireTTL
    from controller.zk.records import CreateTTLRequest

    h = Harness(extended_types=True)
    sid = h.session()
    req = CreateTTLRequest("/ttl", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL, 500)
    r = h.write(sid, OpCode.CREATE_TTL, req)
    assert r.err == 0 and r.response.stat.ephemeral_owner == 0  # the marker is internal
    assert h.sm.tree.get("/ttl").ephemeral_owner < 0  # 0xFF.. | ttl as signed long
    created = h.time
    assert h.sm.tree.expired_ttl_nodes(created + 100) == []
    assert h.sm.tree.expired_ttl_nodes(created + 600) == ["/ttl"]
    h.create(sid, "/ttl/child")
    assert h.sm.tree.expired_ttl_nodes(created + 600) == []  # has a child
    h.write(sid, OpCode.DELETE, DeleteRequest("/ttl/child", -1))
    r = h.apply(ExpireTTL(("/ttl",)), time_ms=created + 600)
    assert (EventType.NODE_DELETED, "/ttl") in r.events and h.sm.tree.find("/ttl") is None
    bad = CreateTTLRequest("/ttl2", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL, 0)
    assert h.write(sid, OpCode.CREATE_TTL, bad).err == Err.BADARGUMENTS
    plain = CreateRequest("/ttl3", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL)
    assert h.write(sid, OpCode.CREATE, plain).err == Err.BADARGUMENTS


def test_ip_acls(h: Harness) -> None:
    sid = h.session()
    local_only = [ACL(31, Id("ip", "127.0.0.0/8"))]
    assert h.create(sid, "/ip", b"", acl=local_only).err == 0
    other = (("ip", "10.1.2.3"),)
    assert h.write(sid, OpCode.SET_DATA, SetDataRequest("/ip", b"x", -1), other).err == Err.NOAUTH
    assert h.write(sid, OpCode.SET_DATA, SetDataRequest("/ip", b"x", -1)).err == 0
    bad = [ACL(31, Id("ip", "not-an-ip"))]
    assert h.create(sid, "/ip2", b"", acl=bad).err == Err.INVALIDACL


def test_null_data_is_kept_apart_from_empty_data_in_log_and_snapshot(h: Harness) -> None:
    sid = h.session()
    h.create(sid, "/null", None)
    h.create(sid, "/empty", b"")
    h.create(sid, "/set")
    h.write(sid, OpCode.SET_DATA, SetDataRequest("/set", None, -1))
    for path, data in (("/null", None), ("/empty", b""), ("/set", None)):
        assert h.sm.tree.get(path).data == data
        assert h.sm.tree.get(path).stat().data_length == 0
    copy = CoordStateMachine()
    copy.restore(h.sm.snapshot())
    assert [copy.tree.get(p).data for p in ("/null", "/empty", "/set")] == [None, b"", None]


def quota_ops(h: Harness, sid: int, step: int) -> None:
    """Creates, sets and deletes below /q, which has a quota."""
    h.create(sid, f"/q/n{step}", b"x" * step)
    h.write(sid, OpCode.SET_DATA, SetDataRequest("/q", b"y" * (step % 3), -1))
    if step % 2:
        h.write(sid, OpCode.DELETE, DeleteRequest(f"/q/n{step - 1}", -1))


def test_quota_usage_is_replicated_state(h: Harness) -> None:
    sid = h.session()
    h.create(sid, "/q", b"abc")
    h.create(sid, "/zookeeper/quota/q", None)
    h.create(sid, "/zookeeper/quota/q/zookeeper_limits", b"count=10,bytes=-1")
    h.create(sid, "/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
    stats = "/zookeeper/quota/q/zookeeper_stats"
    assert h.sm.tree.get(stats).data == b"count=1,bytes=3"
    assert h.sm.tree.get(stats).version == 0  # usage updates touch the data only
    for step in range(1, 4):
        quota_ops(h, sid, step)
    # A replica that starts from a snapshot and applies the rest agrees with one that
    # applied everything.
    replica = Harness()
    index, seq = next(h.index), next(h.seq)
    h.index, h.seq = itertools.count(index), itertools.count(seq)
    replica.index, replica.seq = itertools.count(index), itertools.count(seq)
    replica.time = h.time
    replica.sm.restore(h.sm.snapshot())
    for step in range(4, 9):
        for machine in (h, replica):
            quota_ops(machine, sid, step)
    assert replica.sm.snapshot() == h.sm.snapshot()
    count = 1 + sum(1 for name in h.sm.tree.get("/q").children)
    size = sum(h.sm.tree.get(f"/q/{n}").stat().data_length for n in h.sm.tree.get("/q").children)
    size += h.sm.tree.get("/q").stat().data_length
    assert h.sm.tree.get(stats).data == f"count={count},bytes={size}".encode()


def test_config_node_is_each_controllers_own(h: Harness) -> None:
    h.sm.set_config(b"server.1=h:1:1:participant\nversion=0", 5)
    other = CoordStateMachine()
    other.set_config(b"server.2=h:2:2:participant\nversion=0", 7)
    other.restore(h.sm.snapshot())
    node = other.tree.get("/zookeeper/config")
    assert (node.data, node.mtime, node.version) == (
        b"server.2=h:2:2:participant\nversion=0",
        7,
        -1,
    )


def test_ttl_support_travels_with_the_write() -> None:
    """Whether TTL nodes are allowed is the leader's setting, stamped in the entry, so
    replicas configured differently still apply it alike."""
    from controller.zk.records import CreateTTLRequest

    req = CreateTTLRequest("/ttl", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL, 500)
    for extended, err in ((True, 0), (False, Err.UNIMPLEMENTED)):
        h = Harness(extended_types=extended)
        assert h.write(h.session(), OpCode.CREATE_TTL, req).err == err


def test_times_come_from_the_leader_stamp() -> None:
    """ctime and mtime are the leader's time stamped in the entry, never the applying
    controller's clock: the same entry applied twice gives the same Stat."""
    h = Harness()
    sid = h.session()
    h.time = 1_234_566  # write() moves the clock by 1 ms
    h.create(sid, "/t", b"x")
    node = h.sm.tree.find("/t")
    assert node is not None and node.ctime == node.mtime == 1_234_567


def test_an_entry_of_another_format_is_refused_not_misread() -> None:
    """Format 1 entries (raw jute, receiver's clock) are refused with both versions named."""
    import msgpack

    from controller.coord.commands import COORD_PREFIX, EntryFormatError

    old = COORD_PREFIX + msgpack.packb((2, (1, 2, 3, 5, b"raw", [], 1000)), use_bin_type=True)
    sm = CoordStateMachine()
    with pytest.raises(EntryFormatError, match="format 146, this controller reads format 2"):
        sm.apply(Entry(1, 1, make_zxid(1, 1), EntryKind.COMMAND, old))
    with pytest.raises(EntryFormatError, match="snapshot of format 9"):
        sm.restore(msgpack.packb((9, [], [], [], 0, 0)))
