"""Property tests: random broker deaths, returns, controlled shutdowns, failovers and admin
requests, each followed (or not) by `reconcile`, whose ops run in the simulated tree."""

from __future__ import annotations

import contextlib
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.metadata import records as r
from controller.metadata.decisions import (
    ControllerSettings,
    rebalance_preferred,
    reconcile,
)
from controller.metadata.election import (
    Liveness,
    decide_partition,
    liveness,
    unclean_enabled,
)
from controller.metadata.image import MetadataImage
from controller.metadata.ops import CreateOp, SetDataOp
from controller.metadata.placement import MetadataError, add_partitions, delete_topic
from controller.metadata.records import NO_LEADER, PartitionState
from tests.metadata.simtree import SimTree

SETTINGS = ControllerSettings()
BROKER_IDS = (1, 2, 3, 4, 5)
NAMES = ("a", "b", "c.d", "c_d")

# ---------------------------------------------------------------- one partition


@st.composite
def partition_cases(draw: st.DrawFn) -> tuple[PartitionState, tuple[int, ...], Liveness, bool]:
    replicas = tuple(
        draw(st.lists(st.sampled_from(BROKER_IDS), min_size=1, max_size=4, unique=True))
    )
    isr = draw(st.permutations(replicas))[: draw(st.integers(1, len(replicas)))]
    leader = draw(st.sampled_from([NO_LEADER, *isr, *replicas]))
    live = frozenset(draw(st.sets(st.sampled_from(BROKER_IDS))))
    shutting = frozenset(draw(st.sets(st.sampled_from(sorted(live))))) if live else frozenset()
    state = PartitionState(leader, draw(st.integers(0, 9)), list(isr), 1)
    return state, replicas, Liveness(live, shutting), draw(st.booleans())


@settings(max_examples=1000, deadline=None)
@given(partition_cases())
def test_partition_decision_rules(
    case: tuple[PartitionState, tuple[int, ...], Liveness, bool],
) -> None:
    state, replicas, status, unclean = case
    decision = decide_partition(state, replicas, status, unclean, 2)
    if decision is None:
        new = state
    else:
        new = decision.state
        assert new.controller_epoch == 2
        assert decide_partition(new, replicas, status, unclean, 2) is None, "a fixed point"
    assert new.isr, "the ISR never becomes empty"
    assert new.leader == NO_LEADER or new.leader in new.isr
    assert new.leader == NO_LEADER or new.leader in status.live
    if new.leader != state.leader:
        assert new.leader_epoch == state.leader_epoch + 1
        caught_up = state.leader in state.isr and state.leader in status.live
        assert new.leader == NO_LEADER or new.leader in state.isr or caught_up or unclean, (
            "a non-ISR replica leads only after unclean election or catching up from a live leader"
        )
    else:
        assert new.leader_epoch == state.leader_epoch
    if any(status.is_active(b) for b in new.isr):
        assert new.leader != NO_LEADER


# ---------------------------------------------------------------- the whole loop

ACTIONS = st.one_of(
    st.tuples(
        st.sampled_from(["kill", "start", "shutdown", "stale_shutdown"]),
        st.sampled_from(BROKER_IDS),
    ),
    st.tuples(
        st.just("create"),
        st.sampled_from(NAMES),
        st.integers(1, 6),
        st.integers(1, 4),
        st.booleans(),
    ),
    st.tuples(st.just("add"), st.sampled_from(NAMES), st.integers(1, 3)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("preferred"), st.sampled_from(NAMES), st.booleans()),
    st.tuples(st.just("unclean"), st.sampled_from(NAMES), st.booleans()),
    st.tuples(st.just("failover"), st.integers(0, 2)),
)


class World:
    """The simulated tree plus the history the invariants compare against."""

    def __init__(self, racks: dict[int, str | None], live: set[int], seed: int) -> None:
        self.tree = SimTree()
        self.racks = racks
        self.rng = random.Random(seed)
        self.tree.activate(0)
        for broker in sorted(live):
            self.tree.register_broker(broker, racks[broker])
        # (topic id, partition) -> {leader epoch: leader}, and the last (epoch, leader)
        self.leaders_by_epoch: dict[tuple[str, int], dict[int, int]] = {}
        self.last: dict[tuple[str, int], tuple[int, int]] = {}

    def act(self, action: tuple[Any, ...]) -> None:
        tree, image = self.tree, self.tree.image
        kind = action[0]
        if kind == "kill" and action[1] in tree.broker_sessions:
            tree.kill_broker(action[1])
        elif kind == "start" and action[1] not in tree.broker_sessions:
            tree.register_broker(action[1], self.racks[action[1]])
        elif kind in ("shutdown", "stale_shutdown") and action[1] in tree.broker_sessions:
            epoch = image.brokers[action[1]].epoch
            tree.request_shutdown(action[1], epoch if kind == "shutdown" else epoch - 1)
        elif kind == "create":
            _, name, partitions, rf, unclean = action
            config = {"unclean.leader.election.enable": "true"} if unclean else {}
            with contextlib.suppress(MetadataError):
                tree.create_topic(name, partitions, rf, config, seed=self.rng.randrange(1000))
        elif kind == "add" and action[1] in image.topics:
            total = len(image.topics[action[1]].assignment) + action[2]
            with contextlib.suppress(MetadataError):
                tree.run(add_partitions(image, action[1], total, self.rng))
        elif kind == "delete" and action[1] in image.topics:
            tree.run(delete_topic(image, action[1]))
        elif kind == "preferred" and r.PREFERRED_REPLICA_ELECTION not in tree.nodes:
            refs = [] if action[2] else [r.PartitionRef(action[1], p) for p in range(3)]
            data = r.encode(r.PreferredReplicaElection(refs))
            tree.apply([CreateOp(r.PREFERRED_REPLICA_ELECTION, data)])
        elif kind == "unclean" and r.topic_config_path(action[1]) in tree.nodes:
            record = r.TopicConfig({"unclean.leader.election.enable": str(action[2]).lower()})
            tree.apply([SetDataOp(r.topic_config_path(action[1]), r.encode(record))])
        elif kind == "failover":
            tree.activate(action[1])

    def reconcile(self, rebalance: bool) -> None:
        before = self.tree.image
        result = reconcile(before, SETTINGS)
        if rebalance:
            result = result + rebalance_preferred(before, SETTINGS)
        self.tree.run(result)  # raises MultiError unless every op applies in order
        after = self.tree.image
        assert reconcile(after, SETTINGS).ops == (), "reconcile is idempotent"
        assert after == self.tree.rebuilt_image()
        for name in before.delete_requests:
            assert self.tree.subtree(r.topic_path(name)) == []
            assert r.topic_config_path(name) not in self.tree.nodes
            assert r.delete_topic_path(name) not in self.tree.nodes
        assert after.preferred_election is None
        self.check(before, after)

    def check(self, before: MetadataImage, after: MetadataImage) -> None:
        status = liveness(after)
        for name, topic in after.topics.items():
            assert sorted(topic.partitions) == sorted(topic.assignment)
            old_topic = before.topics.get(name)
            same_topic = old_topic is not None and old_topic.topic_id == topic.topic_id
            for p, part in topic.partitions.items():
                new = part.state
                replicas = topic.replicas(p)
                assert new.isr, "the ISR never becomes empty"
                assert set(new.isr) <= set(replicas)
                assert new.leader == NO_LEADER or new.leader in new.isr
                assert new.leader == NO_LEADER or new.leader in status.live
                if any(status.is_active(b) for b in new.isr):
                    assert new.leader != NO_LEADER, "an active ISR member must lead"
                key = (topic.topic_id, p)
                seen = self.leaders_by_epoch.setdefault(key, {})
                assert seen.setdefault(new.leader_epoch, new.leader) == new.leader
                last_epoch, last_leader = self.last.get(key, (new.leader_epoch, new.leader))
                assert new.leader_epoch >= last_epoch
                if new.leader != last_leader:
                    assert new.leader_epoch > last_epoch, "leader epochs strictly increase"
                self.last[key] = (new.leader_epoch, new.leader)
                old_part = old_topic.partitions.get(p) if same_topic and old_topic else None
                if old_part is None or old_part.version == part.version:
                    continue
                assert new.controller_epoch == before.controller_epoch
                old = old_part.state
                if new.leader not in (old.leader, NO_LEADER):
                    caught_up = old.leader in old.isr and before.is_live(old.leader)
                    unclean = unclean_enabled(before.topic_config(name))
                    assert new.leader in old.isr or caught_up or unclean


@settings(max_examples=150, deadline=None)
@given(
    racks=st.lists(st.sampled_from([None, "x", "y"]), min_size=5, max_size=5),
    live=st.sets(st.sampled_from(BROKER_IDS), min_size=1),
    steps=st.lists(st.tuples(ACTIONS, st.booleans(), st.booleans()), max_size=30),
    seed=st.integers(0, 2**16),
)
def test_reconcile_loop(
    racks: list[str | None],
    live: set[int],
    steps: list[tuple[tuple[Any, ...], bool, bool]],
    seed: int,
) -> None:
    world = World(dict(zip(BROKER_IDS, racks, strict=True)), live, seed)
    for action, reconcile_now, rebalance in steps:
        world.act(action)
        if reconcile_now:
            world.reconcile(rebalance)
    world.reconcile(rebalance=True)


def test_reconcile_loop_long_random_runs() -> None:
    """Longer seeded runs than hypothesis draws (deterministic)."""
    for seed in range(20):
        rng = random.Random(seed)
        world = World({b: rng.choice([None, "x", "y"]) for b in BROKER_IDS}, {1, 2, 3}, seed)
        for _ in range(200):
            action = _random_action(rng)
            world.act(action)
            if rng.random() < 0.6:
                world.reconcile(rng.random() < 0.3)
        world.reconcile(rebalance=True)


def _random_action(rng: random.Random) -> tuple[Any, ...]:
    kind = rng.choice(
        (
            "kill",
            "start",
            "start",
            "shutdown",
            "stale_shutdown",
            "create",
            "add",
            "delete",
            "preferred",
            "unclean",
            "failover",
        )
    )
    if kind in ("kill", "start", "shutdown", "stale_shutdown"):
        return (kind, rng.choice(BROKER_IDS))
    if kind == "create":
        return (kind, rng.choice(NAMES), rng.randint(1, 8), rng.randint(1, 4), rng.random() < 0.3)
    if kind == "add":
        return (kind, rng.choice(NAMES), rng.randint(1, 3))
    if kind == "delete":
        return (kind, rng.choice(NAMES))
    if kind in ("preferred", "unclean"):
        return (kind, rng.choice(NAMES), rng.random() < 0.5)
    return (kind, rng.randint(0, 2))
