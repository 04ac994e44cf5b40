"""The active controller's decisions on admin requests: preferred elections, auto leader
rebalance, topic deletion, and the query helpers."""

from __future__ import annotations

from controller.metadata import records as r
from controller.metadata.decisions import (
    ControllerSettings,
    elect_preferred,
    leader_counts,
    offline_partitions,
    partitions_led_by,
    rebalance_preferred,
    reconcile,
    under_replicated_partitions,
)
from controller.metadata.ops import CreateOp, DeleteOp, SetDataOp
from controller.metadata.placement import delete_topic
from tests.metadata.simtree import SETTINGS, cluster, part, settle, with_topic

# ---------------------------------------------------------------- preferred elections


def test_preferred_election_request() -> None:
    tree = with_topic({0: [1, 2], 1: [2, 1]})
    tree.kill_broker(1)
    settle(tree)
    tree.register_broker(1)
    settle(tree)
    assert part(tree, 0).leader == 2
    request = r.PreferredReplicaElection([r.PartitionRef("t", 0), r.PartitionRef("x", 9)])
    tree.apply([CreateOp(r.PREFERRED_REPLICA_ELECTION, r.encode(request))])
    result = settle(tree)
    assert isinstance(result.ops[-1], DeleteOp)
    assert result.ops[-1].path == r.PREFERRED_REPLICA_ELECTION
    assert (part(tree, 0).leader, part(tree, 0).leader_epoch) == (1, 2)
    assert tree.image.preferred_election is None


def test_preferred_election_request_combines_with_a_death() -> None:
    tree = with_topic({0: [1, 2, 3]})
    tree.kill_broker(1)
    settle(tree)
    tree.register_broker(1)
    settle(tree)
    request = r.PreferredReplicaElection([])  # empty: every partition
    tree.apply([CreateOp(r.PREFERRED_REPLICA_ELECTION, r.encode(request))])
    tree.kill_broker(3)
    result = settle(tree)
    assert sum(isinstance(op, SetDataOp) for op in result.ops) == 1
    assert (part(tree).leader, part(tree).isr, part(tree).leader_epoch) == (1, (2, 1), 2)


def test_elect_preferred_reply() -> None:
    tree = with_topic({0: [1, 2], 1: [2, 1], 2: [3, 1]})
    tree.kill_broker(1)
    tree.kill_broker(3)
    settle(tree)
    tree.register_broker(1)
    settle(tree)
    result = elect_preferred(tree.image, [("t", 0), ("t", 1), ("t", 2), ("u", 0)])
    assert result.reply == {
        ("t", 0): "NONE",
        ("t", 1): "ELECTION_NOT_NEEDED",
        ("t", 2): "PREFERRED_LEADER_NOT_AVAILABLE",
        ("u", 0): "UNKNOWN_TOPIC_OR_PARTITION",
    }
    tree.run(result)
    assert part(tree, 0).leader == 1
    assert elect_preferred(tree.image, None).ops == ()


# ---------------------------------------------------------------- rebalance


def test_rebalance_preferred() -> None:
    tree = with_topic({p: [1, 2] for p in range(10)})
    tree.kill_broker(1)
    settle(tree)
    tree.register_broker(1)
    settle(tree)
    assert leader_counts(tree.image) == {1: 0, 2: 10, 3: 0}
    off = rebalance_preferred(tree.image, ControllerSettings(auto_leader_rebalance_enable=False))
    assert off.ops == ()
    limited = rebalance_preferred(tree.image, ControllerSettings(max_elections_per_batch=4))
    assert len(limited.ops) == 4
    result = rebalance_preferred(tree.image, SETTINGS)
    assert result.reply == 10
    tree.run(result)
    assert leader_counts(tree.image) == {1: 10, 2: 0, 3: 0}
    assert rebalance_preferred(tree.image, SETTINGS).ops == ()
    assert reconcile(tree.image, SETTINGS).ops == ()


def test_rebalance_respects_the_imbalance_threshold() -> None:
    tree = with_topic({p: [1, 2] for p in range(10)})
    # Move one of broker 1's ten preferred leaderships away: 10% is not above 10%.
    state = part(tree, 0).state
    moved = r.PartitionState(2, state.leader_epoch + 1, state.isr, state.controller_epoch)
    tree.apply([SetDataOp(r.state_path("t", 0), r.encode(moved))])
    assert rebalance_preferred(tree.image, SETTINGS).ops == ()
    low = ControllerSettings(leader_imbalance_per_broker_percentage=5)
    assert len(rebalance_preferred(tree.image, low).ops) == 1


def test_rebalance_skips_partitions_reconcile_changes() -> None:
    tree = with_topic({0: [1, 2, 3], 1: [1, 2, 3]})
    tree.kill_broker(1)
    settle(tree)
    tree.register_broker(1)
    settle(tree)
    tree.kill_broker(3)  # reconcile shrinks both ISRs; rebalance must not touch them too
    combined = reconcile(tree.image, SETTINGS) + rebalance_preferred(tree.image, SETTINGS)
    tree.run(combined)
    assert settle(tree).ops == ()


# ---------------------------------------------------------------- deletion


def test_topic_deletion_removes_the_subtree() -> None:
    tree = cluster()
    tree.create_topic("orders", 3, 2)
    tree.create_topic("keep", 1, 1)
    settle(tree)
    tree.run(delete_topic(tree.image, "orders"))
    result = settle(tree)
    assert all(isinstance(op, DeleteOp) for op in result.ops)
    assert result.ops[-1].path == "/admin/delete_topics/orders"
    assert tree.subtree("/brokers/topics/orders") == []
    assert "/config/topics/orders" not in tree.nodes
    assert "orders" not in tree.image.topics
    assert tree.image.delete_requests == frozenset()
    assert "keep" in tree.image.topics


def test_marker_of_unknown_topic_is_removed() -> None:
    tree = cluster()
    tree.apply([CreateOp("/admin/delete_topics/ghost")])
    result = settle(tree)
    assert result.ops == (DeleteOp("/admin/delete_topics/ghost"),)


def test_topic_deletion_disabled_only_removes_the_marker() -> None:
    tree = cluster()
    tree.create_topic("orders", 1, 1)
    settle(tree)
    tree.run(delete_topic(tree.image, "orders"))
    disabled = ControllerSettings(delete_topic_enable=False)
    result = settle(tree, disabled)
    assert result.ops == (DeleteOp("/admin/delete_topics/orders"),)
    assert "orders" in tree.image.topics


# ---------------------------------------------------------------- queries


def test_queries() -> None:
    tree = with_topic({0: [1, 2], 1: [2, 3], 2: [3, 1]})
    assert partitions_led_by(tree.image, 1) == [("t", 0)]
    assert under_replicated_partitions(tree.image) == []
    tree.kill_broker(3)
    assert offline_partitions(tree.image) == [("t", 2)]  # before the controller reacts
    settle(tree)
    assert offline_partitions(tree.image) == []
    assert under_replicated_partitions(tree.image) == [("t", 1), ("t", 2)]
    assert leader_counts(tree.image) == {1: 2, 2: 1}
    assert partitions_led_by(tree.image, 1) == [("t", 0), ("t", 2)]
