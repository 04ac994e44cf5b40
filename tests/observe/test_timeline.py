"""`Timeline` in isolation: events from image diffs of touched paths only, cheap at scale."""

from __future__ import annotations

import time
from types import MappingProxyType, SimpleNamespace
from typing import Any

import attrs

from controller.coord.commands import Applied
from controller.metadata.image import (
    BrokerImage,
    MetadataImage,
    PartitionImage,
    TopicImage,
)
from controller.metadata.records import BrokerRegistration, PartitionState
from controller.node.listeners import LeaderChange
from controller.observe.timeline import Timeline
from controller.raft.types import Entry, EntryKind

PARTITIONS = 100_000


def broker(broker_id: int) -> BrokerImage:
    reg = BrokerRegistration("h", 9000 + broker_id, [], "r1", "0", "x")
    return BrokerImage(broker_id, reg, epoch=100 + broker_id, session_id=broker_id)


def big_image() -> MetadataImage:
    parts = {
        p: PartitionImage(p, PartitionState(1, 0, [1, 2], 1), version=0, mzxid=1)
        for p in range(PARTITIONS)
    }
    topic = TopicImage(
        "big",
        "id",
        MappingProxyType(dict.fromkeys(range(PARTITIONS), (1, 2))),
        0,
        MappingProxyType(parts),
    )
    return MetadataImage(
        brokers=MappingProxyType({1: broker(1), 2: broker(2)}),
        topics=MappingProxyType({"big": topic}),
    )


def batch(*paths: str) -> list[tuple[Entry, object]]:
    entry = Entry(1, 10, 10, EntryKind.COMMAND, b"")
    return [(entry, Applied(0, 0, 10, events=tuple((1, p) for p in paths)))]  # type: ignore[misc]


def test_partition_change_after_broker_death_costs_only_what_it_touched() -> None:
    holder: Any = SimpleNamespace(image=big_image())
    timeline = Timeline(holder)
    before = holder.image
    # Broker 1 dies; partition 7 moves to broker 2.
    topic = before.topics["big"]
    parts = dict(topic.partitions)
    parts[7] = PartitionImage(7, PartitionState(2, 1, [2], 1), version=1, mzxid=11)
    holder.image = attrs.evolve(
        before,
        brokers=MappingProxyType({2: before.brokers[2]}),
        topics=MappingProxyType({"big": attrs.evolve(topic, partitions=MappingProxyType(parts))}),
    )
    began = time.perf_counter()
    timeline.handle_commit(batch("/brokers/ids/1", "/brokers/topics/big/partitions/7/state"))
    took = time.perf_counter() - began
    assert took < 0.05, f"{took:.3f} s for one touched partition of {PARTITIONS}"
    kinds = [e["kind"] for e in timeline.events]
    assert kinds == ["broker_death", "leader_change"]
    change = timeline.events[-1]
    assert (change["old_leader"], change["leader"], change["leader_epoch"]) == (1, 2, 1)
    assert change["cause"] == "broker_failure"
    assert timeline.leader_elections["broker_failure"] == 1
    assert timeline.broker_deaths == 1


def test_leader_changes_and_since() -> None:
    holder: Any = SimpleNamespace(image=MetadataImage())
    timeline = Timeline(holder)
    timeline.handle_leader_change(LeaderChange(2, 1, "follower"))
    timeline.handle_leader_change(LeaderChange(2, 1, "follower"))  # same leader: no event
    timeline.handle_leader_change(LeaderChange(None, 2, "candidate"))
    timeline.handle_leader_change(LeaderChange(3, 2, "leader", 5))
    assert [e["leader"] for e in timeline.events] == [2, 3]
    assert timeline.elections == 2
    assert [e["seq"] for e in timeline.since(1)] == [2]
    assert timeline.since(2) == []
    # A batch touching no metadata path produces nothing.
    timeline.handle_commit(batch("/app/x"))
    assert timeline.seq == 2
