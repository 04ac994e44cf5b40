"""Kind 4 of issue #8: path handling follows ZooKeeper's order of checks, per opcode.

ZooKeeper validates a path (PathUtils.validatePath) only where PrepRequestProcessor does:
create (after looking the parent up and adding the sequence number), setData, setACL and
check. Reads only look the path up (NONODE; `exists` alone refuses a NUL); delete looks up
the parent first; sync, getEphemerals and the watch requests take any string. Characters
outside the BMP are surrogate pairs to Java, so they are invalid."""

from __future__ import annotations

import re
import struct
from typing import Any

import pytest

from controller.zk.constants import Err
from controller.zk.constants import OpCode as Op
from controller.zk.records import (
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    MultiRequest,
    SetACLRequest,
    SetDataRequest,
    SyncRequest,
)
from tests.zk.raw import OPEN, RawClient

OK, BAD, NONODE, EXISTS = 0, Err.BADARGUMENTS, Err.NONODE, Err.NODEEXISTS
SEQ = "seq"  # created with a sequence suffix

# path (B = this test's node) -> create, sequential create, delete, setData, setACL, check
WRITES = [
    ("B/", BAD, SEQ, NONODE, BAD, BAD, BAD),
    ("B/a/", BAD, SEQ, NONODE, BAD, BAD, BAD),
    ("B/missing/", NONODE, NONODE, NONODE, BAD, BAD, BAD),  # the parent lookup comes first
    ("B//x", NONODE, NONODE, NONODE, BAD, BAD, BAD),
    ("B/./x", NONODE, NONODE, NONODE, BAD, BAD, BAD),
    ("B/.", BAD, SEQ, NONODE, BAD, BAD, BAD),
    ("B/..", BAD, SEQ, NONODE, BAD, BAD, BAD),
    ("//", BAD, BAD, NONODE, BAD, BAD, BAD),
    ("/a\x01b", BAD, BAD, NONODE, BAD, BAD, BAD),
    ("B/\x7f", BAD, BAD, NONODE, BAD, BAD, BAD),
    ("B/\ufff0", BAD, BAD, NONODE, BAD, BAD, BAD),
    ("B/\U0001f600", BAD, BAD, NONODE, BAD, BAD, BAD),
    ("B/\u00e9\u4e2d", OK, SEQ, OK, OK, OK, OK),  # the BMP is fine
    ("nolead", BAD, BAD, BAD, BAD, BAD, BAD),
    ("", BAD, BAD, BAD, BAD, BAD, BAD),
    ("/a\x00b", BAD, BAD, BAD, BAD, BAD, BAD),
]


@pytest.mark.parametrize(
    ("path", "create", "sequential", "delete", "set_data", "set_acl", "check"), WRITES
)
def test_write_path_checks(
    raw: RawClient,
    base: str,
    path: str,
    create: int,
    sequential: object,
    delete: int,
    set_data: int,
    set_acl: int,
    check: int,
) -> None:
    path = path.replace("B", base, 1) if path.startswith("B") else path
    if path.endswith("/a/"):
        raw.call(Op.CREATE, CreateRequest(f"{base}/a", b"", OPEN, 0))
    r = raw.call(Op.CREATE, CreateRequest(path, b"", OPEN, 0))
    assert r.err == create
    r = raw.call(Op.CREATE, CreateRequest(path, b"", OPEN, 2))
    if sequential == SEQ:
        assert r.err == 0 and re.fullmatch(re.escape(path) + r"\d{10}", r.body.path), r
    else:
        assert r.err == sequential
    assert raw.call(Op.SET_DATA, SetDataRequest(path, b"", -1)).err == set_data
    assert raw.call(Op.SET_ACL, SetACLRequest(path, OPEN, -1)).err == set_acl
    # (A standalone check that succeeds makes ZooKeeper 3.8.0 fail: only failing ones here.)
    expected = Err.BADVERSION if check == OK else check
    assert raw.call(Op.CHECK, CheckVersionRequest(path, 5)).err == expected
    # The same checks inside a multi, then delete.
    for op, record, expected in [
        (Op.SET_DATA, SetDataRequest(path, b"", -1), set_data),
        (Op.CHECK, CheckVersionRequest(path, -1), check),
        (Op.DELETE, DeleteRequest(path, -1), delete),
    ]:
        results = raw.call(Op.MULTI, MultiRequest([(op, record)])).body.results
        assert results[0][1] == expected, (op, results)
    expected = NONODE if delete == OK else delete  # deleted by the multi already
    assert raw.call(Op.DELETE, DeleteRequest(path, -1)).err == expected


READ_OPS: list[tuple[int, Any]] = [
    (Op.GET_DATA, lambda p: GetDataRequest(p, True)),
    (Op.GET_CHILDREN, lambda p: GetChildrenRequest(p, True)),
    (Op.GET_CHILDREN2, lambda p: GetChildren2Request(p, False)),
    (Op.GET_ACL, GetACLRequest),
    (Op.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest),
]


@pytest.mark.parametrize(
    "path", ["B/", "//", "/.", "/..", "B/.", "B//x", "/a\x01b", "nolead", "/\U0001f600", "/a\x00b"]
)
def test_reads_of_malformed_paths_are_nonode(raw: RawClient, base: str, path: str) -> None:
    path = path.replace("B", base, 1) if path.startswith("B") else path
    expected = BAD if "\0" in path else NONODE
    assert raw.call(Op.EXISTS, ExistsRequest(path, True)).err == expected
    for op, build in READ_OPS:
        assert raw.call(op, build(path)).err == NONODE, op
    r = raw.call(Op.MULTI_READ, MultiRequest([(Op.GET_DATA, GetDataRequest(path, False))]))
    assert r.body.results[0][1] == NONODE
    r = raw.call(Op.SYNC, SyncRequest(path))
    assert r.err == 0  # never validated
    if max(path) <= "\uffff":  # (ZooKeeper echoes other characters in CESU-8)
        assert r.body.path == path
    assert raw.call(Op.GET_EPHEMERALS, GetEphemeralsRequest(path)).body.ephemerals == []


def test_empty_path_reads_the_root(raw: RawClient) -> None:
    # ZooKeeper's node map has "" as an alias of the root.
    root = raw.call(Op.EXISTS, ExistsRequest("/", False)).body.stat
    assert raw.call(Op.EXISTS, ExistsRequest("", False)).body.stat.czxid == root.czxid
    children = raw.call(Op.GET_CHILDREN, GetChildrenRequest("", False)).body.children
    assert "zookeeper" in children
    everything = raw.call(Op.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest("")).body
    below_root = raw.call(Op.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest("/")).body
    assert everything.total_number == below_root.total_number + 1  # "" counts "/" too


def test_sequential_create_at_root_and_trailing_slash(raw: RawClient, base: str) -> None:
    r = raw.call(Op.CREATE, CreateRequest("/", b"", OPEN, 2))
    assert r.err == 0 and re.fullmatch(r"/\d{10}", r.body.path)
    assert raw.call(Op.DELETE, DeleteRequest(r.body.path, -1)).err == 0
    assert raw.call(Op.CREATE, CreateRequest("/", b"", OPEN, 0)).err == EXISTS
    assert raw.call(Op.DELETE, DeleteRequest("/", -1)).err == BAD
    r = raw.call(Op.CREATE, CreateRequest(f"{base}/", b"", OPEN, 3))  # ephemeral sequential
    assert r.err == 0 and re.fullmatch(re.escape(base) + r"/\d{10}", r.body.path)


def test_invalid_utf8_in_a_path_is_replaced_not_fatal(raw: RawClient) -> None:
    # Java decodes malformed UTF-8 to U+FFFD: the path is just invalid (or missing).
    path = b"/a\xff\xfeb"
    body = struct.pack(">i", len(path)) + path + b"\0"
    frame = struct.pack(">iii", 8 + len(body), 41, Op.GET_DATA) + body
    raw.send_raw(frame)
    raw.ping()
    assert [u.header.err for u in raw.unexpected] == [NONODE]
    acl = struct.pack(">iii", 1, 31, 5) + b"world" + struct.pack(">i", 6) + b"anyone"
    body = struct.pack(">i", len(path)) + path + struct.pack(">i", 0) + acl + struct.pack(">i", 0)
    raw.send_raw(struct.pack(">iii", 8 + len(body), 42, Op.CREATE) + body)
    raw.ping()
    assert [u.header.err for u in raw.unexpected] == [NONODE, BAD]


def test_get_ephemerals_prefix_is_a_plain_string_prefix(raw: RawClient, base: str) -> None:
    for name in ("e1", "e2", "x"):
        raw.call(Op.CREATE, CreateRequest(f"{base}/{name}", b"", OPEN, 1))
    mine = {f"{base}/e1", f"{base}/e2", f"{base}/x"}

    def ephemerals(prefix: str) -> set[str]:
        return set(raw.call(Op.GET_EPHEMERALS, GetEphemeralsRequest(prefix)).body.ephemerals)

    assert ephemerals(f"{base}/e") == {f"{base}/e1", f"{base}/e2"}
    assert ephemerals(base) == ephemerals("/") == ephemerals(" ") == ephemerals("") == mine
