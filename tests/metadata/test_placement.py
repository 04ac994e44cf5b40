"""Topic name rules, striped placement and the admin's topic operations."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.metadata import records as r
from controller.metadata.ops import CreateOp, SetDataOp
from controller.metadata.placement import (
    MetadataError,
    add_partitions,
    create_topic,
    delete_topic,
    place_replicas,
    validate_topic_name,
)
from tests.metadata.simtree import SimTree


def cluster(*racks: str | None) -> SimTree:
    """An activated tree with brokers 1..n on the given racks."""
    tree = SimTree()
    tree.activate()
    for broker_id, rack in enumerate(racks, start=1):
        tree.register_broker(broker_id, rack)
    return tree


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["orders", "a", "A.b_c-9", "x" * 249, "__consumer_offsets"])
def test_valid_topic_names(name: str) -> None:
    assert validate_topic_name(name) is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        (".", "not allowed"),
        ("..", "not allowed"),
        ("x" * 250, "250 characters"),
        ("a b", "illegal character ' '"),
        ("a/b", "illegal character '/'"),
        ("é", "illegal character"),
    ],
)
def test_invalid_topic_names(name: str, fragment: str) -> None:
    problem = validate_topic_name(name)
    assert problem is not None
    assert fragment in problem


# ---------------------------------------------------------------- placement


def test_striped_placement_over_three_racks() -> None:
    brokers = [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]
    rack = dict(brokers)
    placed = place_replicas(brokers, 6, 3, random.Random(7))
    assert sorted(placed) == list(range(6))
    for replicas in placed.values():
        assert len(set(replicas)) == 3
        assert {rack[b] for b in replicas} == {"a", "b", "c"}
    leader_racks = [rack[placed[p][0]] for p in range(6)]
    # Consecutive partitions start on consecutive racks: the striped pattern.
    assert leader_racks[:3] == leader_racks[3:]
    assert len(set(leader_racks[:3])) == 3
    assert sorted(Counter(replicas[0] for replicas in placed.values()).values()) == [1] * 6


def test_placement_first_partition_and_determinism() -> None:
    brokers = [(1, None), (2, None), (3, None)]
    first = place_replicas(brokers, 4, 2, random.Random(1), first_partition=5)
    again = place_replicas(list(reversed(brokers)), 4, 2, random.Random(1), first_partition=5)
    assert sorted(first) == [5, 6, 7, 8]
    assert first == again  # input order does not matter, only the rng


@pytest.mark.parametrize(
    ("partitions", "rf", "code", "message"),
    [
        (0, 1, "INVALID_PARTITIONS", "number of partitions 0 is below 1"),
        (1, 0, "INVALID_REPLICATION_FACTOR", "replication factor 0 is below 1"),
        (1, 4, "INVALID_REPLICATION_FACTOR", "replication factor 4 is larger than the 3 live"),
    ],
)
def test_placement_errors(partitions: int, rf: int, code: str, message: str) -> None:
    with pytest.raises(MetadataError) as info:
        place_replicas([(1, None), (2, None), (3, None)], partitions, rf, random.Random(0))
    assert info.value.code == code
    assert message in str(info.value)


@st.composite
def placements(draw: st.DrawFn) -> tuple[list[tuple[int, str | None]], int, int, int]:
    count = draw(st.integers(1, 12))
    rack_names = st.sampled_from([None, "r0", "r1", "r2", "r3"])
    racks = draw(st.lists(rack_names, min_size=count, max_size=count))
    ids = draw(st.lists(st.integers(0, 1000), min_size=count, max_size=count, unique=True))
    partitions = draw(st.integers(1, 40))
    rf = draw(st.integers(1, count))
    seed = draw(st.integers(0, 2**32))
    return list(zip(ids, racks, strict=True)), partitions, rf, seed


@settings(max_examples=300, deadline=None)
@given(placements())
def test_placement_properties(case: tuple[list[tuple[int, str | None]], int, int, int]) -> None:
    brokers, partitions, rf, seed = case
    rack = dict(brokers)
    rack_count = len(set(rack.values()))
    placed = place_replicas(brokers, partitions, rf, random.Random(seed))
    assert sorted(placed) == list(range(partitions))
    for replicas in placed.values():
        assert len(replicas) == rf
        assert len(set(replicas)) == rf, "at most one replica per broker"
        assert set(replicas) <= set(rack)
        assert len({rack[b] for b in replicas}) == min(rf, rack_count), "spread over racks"
    leaders = Counter(replicas[0] for replicas in placed.values())
    low, high = partitions // len(brokers), -(-partitions // len(brokers))
    for broker in rack:
        assert low <= leaders[broker] <= high, "leaders balanced within one of the ideal"
    assert place_replicas(brokers, partitions, rf, random.Random(seed)) == placed


# ---------------------------------------------------------------- create_topic


def test_create_topic_ops_and_reply() -> None:
    tree = cluster("a", "b", "c")
    result = create_topic(
        tree.image, "orders", 3, 2, {"retention.ms": "1000"}, random.Random(1), "TID"
    )
    config_op, topic_op = result.ops
    assert isinstance(config_op, CreateOp)
    assert isinstance(topic_op, CreateOp)
    assert config_op.path == "/config/topics/orders"
    assert r.decode(config_op.data, r.TopicConfig).config == {"retention.ms": "1000"}
    assert topic_op.path == "/brokers/topics/orders"
    record = r.decode(topic_op.data, r.TopicAssignment)
    assert record.topic_id == "TID"
    assert isinstance(result.reply, dict)
    assert record.replicas() == result.reply
    assert sorted(result.reply) == [0, 1, 2]
    tree.run(result)
    assert tree.image.topics["orders"].assignment == result.reply
    assert tree.image.topic_config("orders") == {"retention.ms": "1000"}


def test_create_topic_creates_missing_base_paths() -> None:
    tree = SimTree()  # no controller ran yet: only what the broker needs exists
    tree.apply([CreateOp("/brokers"), CreateOp("/brokers/ids")])
    tree.register_broker(1)
    result = create_topic(tree.image, "t", 1, 1, {}, random.Random(0), "x")
    created = [op.path for op in result.ops]
    assert created == [
        "/brokers/topics",
        "/config",
        "/config/topics",
        "/admin",
        "/admin/delete_topics",
        "/admin/controlled_shutdown",
        "/config/topics/t",
        "/brokers/topics/t",
    ]
    tree.run(result)


def test_create_topic_over_leftover_config_sets_it() -> None:
    tree = cluster(None)
    tree.apply([CreateOp("/config/topics/t", r.encode(r.TopicConfig(config={"a": "1"})))])
    result = create_topic(tree.image, "t", 1, 1, {}, random.Random(0), "x")
    assert isinstance(result.ops[0], SetDataOp)
    tree.run(result)
    assert tree.image.topic_config("t") == {}


@pytest.mark.parametrize(
    ("name", "partitions", "rf", "config", "code", "message"),
    [
        ("bad name", 1, 1, {}, "INVALID_TOPIC_EXCEPTION", "topic 'bad name': topic name contains"),
        ("orders", 1, 1, {}, "TOPIC_ALREADY_EXISTS", "topic 'orders': already exists"),
        ("gone", 1, 1, {}, "TOPIC_ALREADY_EXISTS", "topic 'gone': is marked for deletion"),
        (
            "my_topic",
            1,
            1,
            {},
            "INVALID_TOPIC_EXCEPTION",
            "collides with existing topic 'my.topic'",
        ),
        ("new", 0, 1, {}, "INVALID_PARTITIONS", "topic 'new': number of partitions 0 is outside"),
        ("new", 1, 0, {}, "INVALID_REPLICATION_FACTOR", "topic 'new': replication factor 0 is"),
        (
            "orders2",
            1,
            4,
            {},
            "INVALID_REPLICATION_FACTOR",
            "topic 'orders2': replication factor 4 is larger than the 3 live brokers",
        ),
        (
            "new",
            1,
            1,
            {"unclean.leader.election.enable": "yes"},
            "INVALID_CONFIG",
            "topic 'new': config unclean.leader.election.enable='yes': must be true or false",
        ),
        (
            "new",
            1,
            1,
            {"bogus.key": "1"},
            "INVALID_CONFIG",
            "topic 'new': unknown topic config 'bogus.key'",
        ),
        (
            "new",
            1,
            1,
            {"retention.ms": "abc"},
            "INVALID_CONFIG",
            "topic 'new': config retention.ms='abc': not an integer",
        ),
        (
            "new",
            1,
            1,
            {"cleanup.policy": "compact,shred"},
            "INVALID_CONFIG",
            "must be a comma-separated list of delete, compact",
        ),
    ],
)
def test_create_topic_errors(
    name: str, partitions: int, rf: int, config: dict[str, str], code: str, message: str
) -> None:
    tree = cluster(None, None, None)
    tree.create_topic("orders", 1, 1)
    tree.create_topic("my.topic", 1, 1)
    tree.create_topic("gone", 1, 1)
    tree.run(delete_topic(tree.image, "gone"))
    with pytest.raises(MetadataError) as info:
        create_topic(tree.image, name, partitions, rf, config, random.Random(0), "x")
    assert info.value.code == code
    assert str(info.value) == info.value.message
    assert message in info.value.message


def test_create_topic_accepts_boolean_spellings() -> None:
    tree = cluster(None)
    for value in ("true", "FALSE", " True "):
        config = {"unclean.leader.election.enable": value, "retention.ms": "-1"}
        create_topic(tree.image, "t", 1, 1, config, random.Random(0), "x")


# ---------------------------------------------------------------- add / delete


def test_add_partitions() -> None:
    tree = cluster("a", "b", "c")
    tree.create_topic("orders", 2, 2)
    before = tree.image.topics["orders"]
    result = add_partitions(tree.image, "orders", 5, random.Random(3))
    (op,) = result.ops
    assert isinstance(op, SetDataOp)
    assert op.version == before.assignment_version
    assert isinstance(result.reply, dict)
    assert sorted(result.reply) == [2, 3, 4]
    assert all(len(replicas) == 2 for replicas in result.reply.values())
    tree.run(result)
    after = tree.image.topics["orders"]
    assert after.topic_id == before.topic_id
    assert sorted(after.assignment) == [0, 1, 2, 3, 4]
    assert {p: after.assignment[p] for p in (0, 1)} == dict(before.assignment)


@pytest.mark.parametrize(
    ("name", "total", "code", "message"),
    [
        ("nope", 3, "UNKNOWN_TOPIC_OR_PARTITION", "topic 'nope': does not exist"),
        ("orders", 2, "INVALID_PARTITIONS", "topic 'orders': has 2 partitions; 2 would not add"),
        ("orders", 1, "INVALID_PARTITIONS", "has 2 partitions"),
        ("gone", 3, "INVALID_TOPIC_EXCEPTION", "topic 'gone': is queued for deletion"),
    ],
)
def test_add_partitions_errors(name: str, total: int, code: str, message: str) -> None:
    tree = cluster(None, None)
    tree.create_topic("orders", 2, 2)
    tree.create_topic("gone", 1, 1)
    tree.run(delete_topic(tree.image, "gone"))
    with pytest.raises(MetadataError) as info:
        add_partitions(tree.image, name, total, random.Random(0))
    assert info.value.code == code
    assert message in info.value.message


def test_add_partitions_needs_enough_live_brokers() -> None:
    tree = cluster(None, None)
    tree.create_topic("orders", 1, 2)
    tree.kill_broker(2)
    with pytest.raises(MetadataError) as info:
        add_partitions(tree.image, "orders", 2, random.Random(0))
    assert info.value.code == "INVALID_REPLICATION_FACTOR"


def test_delete_topic() -> None:
    tree = cluster(None)
    tree.create_topic("orders", 1, 1)
    with pytest.raises(MetadataError) as info:
        delete_topic(tree.image, "nope")
    assert info.value.code == "UNKNOWN_TOPIC_OR_PARTITION"
    result = delete_topic(tree.image, "orders")
    assert result.ops == (CreateOp("/admin/delete_topics/orders"),)
    tree.run(result)
    assert tree.image.delete_requests == {"orders"}
    assert delete_topic(tree.image, "orders").ops == ()
