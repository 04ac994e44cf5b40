"""Kind 3 of issue #8: container and TTL nodes. Their internal ephemeralOwner markers never
reach a Stat (ZooKeeper reports 0), and TTL nodes exist only with extendedTypesEnabled (off by
default: UNIMPLEMENTED), whatever opcode or create mode asks for one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.zk.constants import Err
from controller.zk.constants import OpCode as Op
from controller.zk.records import (
    CreateRequest,
    CreateTTLRequest,
    ExistsRequest,
    GetDataRequest,
    MultiRequest,
)
from tests.zk.conftest import Target
from tests.zk.raw import OPEN, RawClient, connect

PERSISTENT, CONTAINER, TTL, TTL_SEQUENTIAL = 0, 4, 5, 6


def owner_everywhere(raw: RawClient, path: str) -> set[int]:
    """ephemeralOwner as exists and getData report it."""
    exists = raw.call(Op.EXISTS, ExistsRequest(path, False)).body.stat.ephemeral_owner
    get = raw.call(Op.GET_DATA, GetDataRequest(path, False)).body.stat.ephemeral_owner
    return {exists, get}


def test_container_stat_shows_owner_zero(raw: RawClient, base: str) -> None:
    r = raw.call(Op.CREATE_CONTAINER, CreateRequest(f"{base}/c", b"", OPEN, CONTAINER))
    assert r.err == 0 and r.body.stat.ephemeral_owner == 0
    assert owner_everywhere(raw, f"{base}/c") == {0}


def test_create_kind_follows_the_opcode_and_in_multi_the_flags(raw: RawClient, base: str) -> None:
    # Outside a multi the transaction type is the opcode's: createContainer makes a container
    # even with flags 0, create/create2 with the container flag a persistent node.
    r = raw.call(Op.CREATE2, CreateRequest(f"{base}/p", b"", OPEN, CONTAINER))
    assert r.err == 0 and r.body.path == f"{base}/p"
    # In a multi ZooKeeper rebuilds every create from its flags (Op.create): the container
    # flag answers as create2 (with a Stat), any other as a plain create, even if sent as
    # create2 or createContainer.
    ops = [
        (Op.CREATE, CreateRequest(f"{base}/m1", b"", OPEN, CONTAINER)),
        (Op.CREATE2, CreateRequest(f"{base}/m2", b"", OPEN, PERSISTENT)),
        (Op.CREATE_CONTAINER, CreateRequest(f"{base}/m3", b"", OPEN, PERSISTENT)),
        (Op.CREATE_TTL, CreateTTLRequest(f"{base}/m4", b"", OPEN, PERSISTENT, 100)),
    ]
    r = raw.call(Op.MULTI, MultiRequest(ops))
    assert [(t, e) for t, e, _ in r.body.results] == [(15, 0), (1, 0), (1, 0), (1, 0)]
    assert r.body.results[0][2].stat.ephemeral_owner == 0


@pytest.mark.parametrize(
    ("op", "record"),
    [
        (Op.CREATE_TTL, CreateTTLRequest("/t", b"", OPEN, TTL, 1000)),
        (Op.CREATE_TTL, CreateTTLRequest("/t-", b"", OPEN, TTL_SEQUENTIAL, 1000)),
        (Op.CREATE2, CreateRequest("/t", b"", OPEN, TTL)),
        (Op.CREATE, CreateRequest("/t", b"", OPEN, TTL_SEQUENTIAL)),
        (Op.CREATE_TTL, CreateTTLRequest("no-slash", b"", [], TTL, 0)),  # checked first
    ],
)
def test_ttl_nodes_are_unimplemented_by_default(raw: RawClient, op: int, record: object) -> None:
    assert raw.call(op, record).err == Err.UNIMPLEMENTED


def test_ttl_in_multi_is_unimplemented_by_default(raw: RawClient, base: str) -> None:
    ops = [
        (Op.CREATE, CreateRequest(f"{base}/ok", b"", OPEN, PERSISTENT)),
        (Op.CREATE_TTL, CreateTTLRequest(f"{base}/t", b"", OPEN, TTL, 1000)),
    ]
    r = raw.call(Op.MULTI, MultiRequest(ops))
    assert [(t, e) for t, e, _ in r.body.results] == [(-1, 0), (-1, Err.UNIMPLEMENTED)]
    # A TTL mode sent as a plain CreateRequest cannot be read as a TTL create at all.
    ops = [(Op.CREATE, CreateRequest(f"{base}/t", b"", OPEN, TTL))]
    assert raw.call(Op.MULTI, MultiRequest(ops)).err == Err.MARSHALLINGERROR


@pytest.fixture
def ext(extended_target: Target) -> Iterator[RawClient]:
    client = connect(extended_target.servers[0])
    yield client
    client.close()


def test_ttl_nodes_with_extended_types_show_owner_zero(ext: RawClient) -> None:
    base = "/ttl-owner"
    assert ext.call(Op.CREATE, CreateRequest(base, b"", OPEN, PERSISTENT)).err in (0, -110)
    r = ext.call(Op.CREATE_TTL, CreateTTLRequest(f"{base}/t-", b"", OPEN, TTL_SEQUENTIAL, 60000))
    assert r.err == 0 and r.body.path.startswith(f"{base}/t-")
    assert r.body.stat.ephemeral_owner == 0
    assert owner_everywhere(ext, r.body.path) == {0}
    ops = [(Op.CREATE_TTL, CreateTTLRequest(f"{base}/m-", b"", OPEN, TTL_SEQUENTIAL, 60000))]
    r = ext.call(Op.MULTI, MultiRequest(ops))
    (kind, err, result) = r.body.results[0]
    assert (kind, err, result.stat.ephemeral_owner) == (15, 0, 0)


@pytest.mark.parametrize(
    ("op", "record"),
    [
        (Op.CREATE_TTL, CreateTTLRequest("/bad-ttl", b"", OPEN, TTL, 0)),
        (Op.CREATE_TTL, CreateTTLRequest("/bad-ttl", b"", OPEN, TTL, 1 << 40)),
        (Op.CREATE_TTL, CreateTTLRequest("/bad-ttl", b"", OPEN, PERSISTENT, 1000)),
        (Op.CREATE2, CreateRequest("/bad-ttl", b"", OPEN, TTL)),  # no TTL to give it
        (Op.CREATE, CreateRequest("/bad-ttl", b"", OPEN, 7)),  # no such mode
    ],
)
def test_ttl_argument_errors_with_extended_types(ext: RawClient, op: int, record: object) -> None:
    assert ext.call(op, record).err == Err.BADARGUMENTS
