"""The active controller's decisions: activation, new partitions and elections, one example
at a time through the simulated tree."""

from __future__ import annotations

import random

import pytest

from controller.metadata import records as r
from controller.metadata.decisions import (
    become_active,
    offline_partitions,
    partitions_led_by,
    reconcile,
)
from controller.metadata.ops import CreateOp, DeleteOp, SetDataOp
from controller.metadata.placement import add_partitions
from tests.metadata.simtree import (
    SETTINGS,
    MultiError,
    SimTree,
    cluster,
    part,
    settle,
    with_topic,
)

# ---------------------------------------------------------------- become_active


def test_first_controller_gets_epoch_one() -> None:
    tree = SimTree()
    result = become_active(tree.image, 3, 1234)
    assert result.reply == 1
    assert [op.path for op in result.ops] == [*r.BASE_PATHS, "/controller_epoch", "/controller"]
    controller_op = result.ops[-1]
    assert isinstance(controller_op, CreateOp)
    assert controller_op.ephemeral
    tree.run(result, session=7)
    assert tree.image.controller == r.ControllerInfo(brokerid=3, timestamp="1234")
    assert tree.image.controller_epoch == 1
    assert tree.nodes["/controller"].ephemeral_owner == 7
    assert tree.nodes["/controller_epoch"].data == b"1"


def test_next_controller_bumps_epoch_and_replaces_controller() -> None:
    tree = SimTree()
    tree.activate(controller_id=1)
    result = become_active(tree.image, 2, 99)
    assert result.reply == 2
    assert result.ops == (
        SetDataOp("/controller_epoch", b"2", version=0),
        DeleteOp("/controller"),
        CreateOp("/controller", r.encode(r.ControllerInfo(2, "99")), ephemeral=True),
    )
    stale = become_active(tree.image, 3, 100)
    tree.run(result)
    assert tree.image.controller_epoch == 2
    with pytest.raises(MultiError) as info:
        tree.run(stale)  # fenced: the epoch version moved on
    assert "BADVERSION" in info.value.reason


# ---------------------------------------------------------------- new partitions


def test_new_topic_gets_partition_states() -> None:
    tree = cluster()
    tree.create_topic("orders", 3, 2, seed=5)
    result = reconcile(tree.image, SETTINGS)
    paths = [op.path for op in result.ops]
    assert paths[0] == "/brokers/topics/orders/partitions"
    assert paths[1:4] == [
        "/brokers/topics/orders/partitions/0",
        "/brokers/topics/orders/partitions/0/state",
        "/brokers/topics/orders/partitions/1",
    ]
    assert all(isinstance(op, CreateOp) for op in result.ops)
    tree.run(result)
    topic = tree.image.topics["orders"]
    for p, replicas in topic.assignment.items():
        state = topic.partitions[p].state
        assert state.leader == replicas[0]
        assert state.isr == list(replicas)
        assert state.leader_epoch == 0
        assert state.controller_epoch == 1
    assert reconcile(tree.image, SETTINGS).ops == ()


def test_new_partition_isr_is_active_replicas_only() -> None:
    tree = cluster()
    tree.kill_broker(1)
    tree.request_shutdown(2)
    tree.apply([CreateOp(r.topic_path("t"), r.encode(r.TopicAssignment({"0": [1, 2, 3]})))])
    settle(tree)
    assert part(tree).state.leader == 3
    assert part(tree).state.isr == [3]


def test_new_partition_without_live_replica_is_offline_with_full_isr() -> None:
    tree = cluster()
    tree.kill_broker(1)
    tree.kill_broker(2)
    tree.apply([CreateOp(r.topic_path("t"), r.encode(r.TopicAssignment({"0": [1, 2]})))])
    settle(tree)
    assert (part(tree).leader, part(tree).isr) == (-1, (1, 2))
    tree.register_broker(2)
    result = settle(tree)
    assert (part(tree).leader, part(tree).isr, part(tree).leader_epoch) == (2, (2,), 1)
    assert result.messages == (
        "t-0: leader -1 -> 2, leader epoch 1, isr [2] (broker 1 died; broker 2 is back)",
    )


def test_added_partitions_get_states_in_existing_partitions_dir() -> None:
    tree = cluster()
    tree.create_topic("orders", 1, 2)
    settle(tree)
    tree.run(add_partitions(tree.image, "orders", 3, random.Random(0)))
    result = settle(tree)
    assert [op.path for op in result.ops] == [
        "/brokers/topics/orders/partitions/1",
        "/brokers/topics/orders/partitions/1/state",
        "/brokers/topics/orders/partitions/2",
        "/brokers/topics/orders/partitions/2/state",
    ]


# ---------------------------------------------------------------- elections


def test_leader_death_elects_next_isr_replica() -> None:
    tree = with_topic({0: [1, 2, 3]})
    version = part(tree).version
    tree.kill_broker(1)
    result = reconcile(tree.image, SETTINGS)
    assert len(result.ops) == 1
    op = result.ops[0]
    assert isinstance(op, SetDataOp)
    assert op.version == version
    assert result.messages == ("t-0: leader 1 -> 2, leader epoch 1, isr [2, 3] (broker 1 died)",)
    tree.run(result)
    assert reconcile(tree.image, SETTINGS).ops == ()
    state = part(tree).state
    assert (state.leader, state.isr, state.leader_epoch, state.controller_epoch) == (
        2,
        [2, 3],
        1,
        1,
    )


def test_follower_death_shrinks_isr_without_epoch_bump() -> None:
    tree = with_topic({0: [1, 2, 3]})
    tree.kill_broker(3)
    result = settle(tree)
    assert result.messages == (
        "t-0: isr [1, 2, 3] -> [1, 2], leader 1, leader epoch 0 (broker 3 died)",
    )
    tree.register_broker(3)
    result = settle(tree)
    assert part(tree).isr == (1, 2, 3)
    assert part(tree).leader_epoch == 0
    assert "broker 3 rejoined the ISR" in result.messages[0]


def test_last_isr_member_stays_and_non_isr_replica_cannot_take_over() -> None:
    tree = with_topic({0: [1, 2]})
    tree.kill_broker(2)
    settle(tree)
    tree.kill_broker(1)
    result = settle(tree)
    assert (part(tree).leader, part(tree).isr, part(tree).leader_epoch) == (-1, (1,), 1)
    assert "offline" in result.messages[0]
    tree.register_broker(2)
    assert settle(tree).ops == ()  # 2 is not in the ISR: the partition stays offline
    assert offline_partitions(tree.image) == [("t", 0)]
    tree.register_broker(1)
    settle(tree)
    assert (part(tree).leader, part(tree).isr, part(tree).leader_epoch) == (1, (1, 2), 2)


def test_simultaneous_deaths_keep_the_leader_in_the_isr() -> None:
    tree = with_topic({0: [1, 2, 3]})
    tree.kill_broker(1)
    tree.kill_broker(2)
    tree.kill_broker(3)
    settle(tree)
    assert (part(tree).leader, part(tree).isr) == (-1, (1,))


def test_unclean_election_takes_a_live_non_isr_replica() -> None:
    tree = with_topic({0: [1, 2]}, config={"unclean.leader.election.enable": "true"})
    tree.kill_broker(2)
    settle(tree)
    tree.kill_broker(1)
    settle(tree)
    tree.register_broker(2)
    result = settle(tree)
    assert (part(tree).leader, part(tree).isr, part(tree).leader_epoch) == (2, (2,), 2)
    assert "unclean election, possibly losing data" in result.messages[0]


def test_controlled_shutdown_moves_leadership_and_leaves_isr() -> None:
    tree = with_topic({0: [1, 2, 3], 1: [2, 1, 3]})
    tree.request_shutdown(1)
    result = settle(tree)
    assert (part(tree, 0).leader, part(tree, 0).isr) == (2, (2, 3))
    assert (part(tree, 1).leader, part(tree, 1).isr) == (2, (2, 3))
    assert "broker 1 is shutting down" in result.messages[0]
    assert partitions_led_by(tree.image, 1) == []
    tree.kill_broker(1)  # the request goes with the broker's session
    assert settle(tree).ops == ()
    tree.register_broker(1)
    settle(tree)
    assert part(tree, 0).isr == (2, 3, 1)


def test_stale_shutdown_request_is_ignored() -> None:
    tree = with_topic({0: [1, 2]})
    tree.request_shutdown(1, epoch=12345)
    assert reconcile(tree.image, SETTINGS).ops == ()


def test_shutting_down_leader_is_kept_when_nobody_else_can_lead() -> None:
    tree = with_topic({0: [1]})
    tree.request_shutdown(1)
    assert settle(tree).ops == ()
    assert part(tree).leader == 1


def test_shutting_down_leader_hands_over_to_a_returning_replica() -> None:
    tree = with_topic({0: [1, 2]})
    tree.kill_broker(2)
    settle(tree)
    assert part(tree).isr == (1,)
    tree.register_broker(2)
    tree.request_shutdown(1)  # both seen by one reconcile
    settle(tree)
    assert (part(tree).leader, part(tree).isr, part(tree).leader_epoch) == (2, (2,), 1)
