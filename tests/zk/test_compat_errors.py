"""Kind 6 of issue #8: which error wins when a request is wrong in several ways.

PrepRequestProcessor's order, per opcode: create checks flags, TTL support, the path's shape,
then normalises the ACL (INVALIDACL), looks the parent up (NONODE), checks CREATE on it
(NOAUTH), then the full path, existence and an ephemeral parent. delete checks the parent and
DELETE on it before the node exists, then version, then children. setData: path, node, WRITE,
version. setACL: path, ACL, node, ADMIN, version. check: path, node, READ, version. Reads check
existence, then READ (exists checks nothing; getACL needs READ or ADMIN and hides digest
secrets without ADMIN)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from controller.coord.acl import digest_id
from controller.zk.constants import Err
from controller.zk.constants import OpCode as Op
from controller.zk.records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    MultiRequest,
    SetACLRequest,
    SetDataRequest,
)
from tests.zk.raw import OPEN, RawClient

USER = digest_id("u:p")
NOAUTH, NONODE, BAD, INVALIDACL = Err.NOAUTH, Err.NONODE, Err.BADARGUMENTS, Err.INVALIDACL
BADVERSION, NOTEMPTY = Err.BADVERSION, Err.NOTEMPTY
READ, WRITE, CREATE, DELETE, ADMIN, ALL = 1, 2, 4, 8, 16, 31


@pytest.fixture
def tree(make_raw: Callable[..., RawClient], base: str) -> Iterator[dict[str, str]]:
    """Under `base`: p<perms> nodes where everyone has only <perms> (user u has all), each
    with a child x, and an ephemeral e."""
    admin = make_raw()
    assert admin.add_auth("digest", b"u:p") == 0
    paths = {"base": base}
    for perms in (0, READ, ADMIN, ALL & ~DELETE, ALL & ~CREATE, READ | ADMIN):
        path = f"{base}/p{perms}"
        acl = [ACL(perms, Id("world", "anyone")), ACL(ALL, Id("digest", USER))]
        assert admin.call(Op.CREATE, CreateRequest(path, b"", acl, 0)).err == 0
        assert admin.call(Op.CREATE, CreateRequest(f"{path}/x", b"", OPEN, 0)).err == 0
        paths[f"p{perms}"] = path
    assert admin.call(Op.CREATE, CreateRequest(f"{base}/e", b"", OPEN, 1)).err == 0
    yield paths


def test_delete_checks_parent_and_permission_before_the_node(
    raw: RawClient, tree: dict[str, str]
) -> None:
    nodelete = tree[f"p{ALL & ~DELETE}"]
    base = tree["base"]

    def delete(path: str, version: int = -1) -> int:
        return raw.call(Op.DELETE, DeleteRequest(path, version)).err

    assert delete(f"{nodelete}/missing") == NOAUTH
    assert delete(f"{nodelete}/x", 5) == NOAUTH
    assert delete(f"{base}/missing/x") == NONODE
    assert delete(tree["p0"], 5) == BADVERSION  # version before children
    assert delete(tree["p0"]) == NOTEMPTY
    r = raw.call(Op.MULTI, MultiRequest([(Op.DELETE, DeleteRequest(f"{nodelete}/missing", -1))]))
    assert [(t, e) for t, e, _ in r.body.results] == [(-1, NOAUTH)]


def test_create_order_of_checks(raw: RawClient, tree: dict[str, str]) -> None:
    p0, base = tree["p0"], tree["base"]

    def create(path: str, acl: list[ACL] = OPEN, flags: int = 0) -> int:
        return raw.call(Op.CREATE, CreateRequest(path, b"", acl, flags)).err

    assert create("bad", [], 7) == BAD  # flags first
    assert create("bad", []) == BAD  # then the path's shape (no '/')
    assert create(f"{base}/missing/x", []) == INVALIDACL  # ACL before the parent
    assert create(f"{p0}/x", []) == INVALIDACL
    assert create(f"{base}/missing/x") == NONODE
    assert create(f"{p0}/y") == NOAUTH
    assert create(f"{p0}/x") == NOAUTH  # permission before existence
    assert create(f"{p0}/\x01") == NOAUTH  # and before the name's validity
    assert create(f"{base}/e") == Err.NODEEXISTS
    assert create(f"{base}/e/x") == Err.NOCHILDRENFOREPHEMERALS


def test_set_data_set_acl_and_check_order(raw: RawClient, tree: dict[str, str]) -> None:
    p0, readable, base = tree["p0"], tree[f"p{READ}"], tree["base"]
    assert raw.call(Op.SET_DATA, SetDataRequest(p0, b"x", 5)).err == NOAUTH
    assert raw.call(Op.SET_DATA, SetDataRequest(f"{p0}/missing", b"x", 5)).err == NONODE
    assert raw.call(Op.SET_ACL, SetACLRequest(p0, OPEN, 5)).err == NOAUTH
    assert raw.call(Op.SET_ACL, SetACLRequest(p0, [], 5)).err == INVALIDACL
    assert raw.call(Op.SET_ACL, SetACLRequest(f"{base}/missing", [], 5)).err == INVALIDACL
    bad_scheme = [ACL(ALL, Id("foo", "bar"))]
    assert raw.call(Op.SET_ACL, SetACLRequest(f"{base}/missing", bad_scheme, 5)).err == INVALIDACL
    assert raw.call(Op.SET_ACL, SetACLRequest(f"{base}/missing", OPEN, 5)).err == NONODE
    assert raw.call(Op.CHECK, CheckVersionRequest(p0, 5)).err == NOAUTH
    assert raw.call(Op.CHECK, CheckVersionRequest(f"{base}/missing", 5)).err == NONODE
    assert raw.call(Op.CHECK, CheckVersionRequest(readable, 5)).err == BADVERSION
    r = raw.call(Op.MULTI, MultiRequest([(Op.CHECK, CheckVersionRequest(p0, 5))]))
    assert r.body.results[0][1] == NOAUTH


def test_reads_check_existence_then_read_permission(raw: RawClient, tree: dict[str, str]) -> None:
    p0, base = tree["p0"], tree["base"]
    for op, record in [
        (Op.GET_DATA, GetDataRequest(p0, True)),
        (Op.GET_CHILDREN, GetChildrenRequest(p0, False)),
        (Op.GET_CHILDREN2, GetChildren2Request(p0, False)),
        (Op.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest(p0)),
        (Op.GET_ACL, GetACLRequest(p0)),
    ]:
        assert raw.call(op, record).err == NOAUTH, op
    assert raw.call(Op.EXISTS, ExistsRequest(p0, False)).err == 0  # no ACL on exists
    reads = [
        (Op.GET_DATA, GetDataRequest(p0, False)),
        (Op.GET_CHILDREN, GetChildrenRequest(f"{base}/", False)),
        (Op.GET_DATA, GetDataRequest(base, False)),
    ]
    results = raw.call(Op.MULTI_READ, MultiRequest(reads)).body.results
    assert [(t, e) for t, e, _ in results] == [(-1, NOAUTH), (-1, NONODE), (4, 0)]


def test_get_acl_hides_digest_secrets_without_admin(raw: RawClient, tree: dict[str, str]) -> None:
    shown = raw.call(Op.GET_ACL, GetACLRequest(tree[f"p{READ}"])).body.acl
    assert shown == [ACL(READ, Id("world", "anyone")), ACL(ALL, Id("digest", "u:x"))]
    shown = raw.call(Op.GET_ACL, GetACLRequest(tree[f"p{ADMIN}"])).body.acl
    assert shown == [ACL(ADMIN, Id("world", "anyone")), ACL(ALL, Id("digest", USER))]


@pytest.mark.parametrize(
    ("acl", "expected"),
    [
        ([ACL(99, Id("world", "anyone"))], 0),  # permission bits are not checked
        ([ACL(ALL, Id("digest", "u:"))], INVALIDACL),  # user:hash, Java's split
        ([ACL(ALL, Id("digest", ":h"))], 0),
        ([ACL(ALL, Id("digest", "a:b:c"))], INVALIDACL),
        ([ACL(ALL, Id("ip", "300.1.1.1"))], INVALIDACL),
        ([ACL(ALL, Id("ip", "10.0.0.0/33"))], INVALIDACL),
        ([ACL(ALL, Id("ip", "::1"))], INVALIDACL),  # IPv4 only in 3.8
        ([ACL(ALL, Id("ip", "10.0.0.0/8"))], 0),
        ([ACL(ALL, Id("world", "x"))], INVALIDACL),
        ([ACL(ALL, Id("auth", ""))], INVALIDACL),  # no authenticated id
        ([ACL(ALL, Id("super", "x"))], INVALIDACL),
    ],
)
def test_acl_validation(raw: RawClient, base: str, acl: list[ACL], expected: int) -> None:
    assert raw.call(Op.CREATE, CreateRequest(f"{base}/a", b"", acl, 0)).err == expected
    if acl[0].perms == 99:
        assert raw.call(Op.GET_ACL, GetACLRequest(f"{base}/a")).body.acl == acl


def test_acl_duplicates_and_auth_expansion(raw: RawClient, base: str) -> None:
    assert raw.add_auth("digest", b"u:p") == 0
    assert raw.add_auth("digest", b"u:p") == 0
    ids = raw.call(Op.WHO_AM_I).body.client_info
    assert [(c.auth_scheme, c.user) for c in ids] == [("ip", "127.0.0.1"), ("digest", "u")]
    acl = [*OPEN, *OPEN, ACL(ALL, Id("auth", "")), ACL(ALL, Id("digest", USER))]
    assert raw.call(Op.CREATE, CreateRequest(f"{base}/d", b"", acl, 0)).err == 0
    # Duplicates go before `auth` is expanded, not after.
    expected = [*OPEN, ACL(ALL, Id("digest", USER)), ACL(ALL, Id("digest", USER))]
    assert raw.call(Op.GET_ACL, GetACLRequest(f"{base}/d")).body.acl == expected
