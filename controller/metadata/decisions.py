"""The active controller's decisions (pure): image in, `ControllerResult` (tree ops) out.

`become_active` claims the controller role; `reconcile` is the idempotent heart, returning
every change the image needs now (topic deletions, partition states of new partitions,
elections and ISR changes after broker deaths, returns and controlled shutdowns, requested
preferred elections); `rebalance_preferred` is Kafka's periodic auto leader rebalance.
Per-partition rules live in `controller.metadata.election`.

The ops of a result apply in order (parents before children, children deleted first), so the
shell may split them into bounded multis (`ops.batches`). Partition states are written with
`SetDataOp(..., version=<partition epoch>)`: a concurrent change fails the multi, and the
controller decides again from the newer image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from controller.metadata import records as r
from controller.metadata.election import (
    ELECTION_NONE,
    UNKNOWN_TOPIC_OR_PARTITION,
    Liveness,
    decide_partition,
    describe_change,
    liveness,
    new_partition_state,
    preferred_decision,
    unclean_enabled,
)
from controller.metadata.image import MetadataImage, TopicImage
from controller.metadata.ops import ControllerResult, CreateOp, DeleteOp, SetDataOp, TreeOp
from controller.metadata.placement import base_path_ops
from controller.metadata.records import ControllerInfo, PartitionState

PartitionKey = tuple[str, int]


@attrs.frozen
class ControllerSettings:
    """Settings of the decisions (Kafka's broker config names, dots as underscores).

    - `leader_imbalance_per_broker_percentage`, `auto_leader_rebalance_enable`: Kafka's auto
      leader rebalance (`KafkaController.checkAndTriggerAutoLeaderRebalance`).
    - `max_elections_per_batch`: bound on the elections one `rebalance_preferred` returns
      (Kafka's `maybeBalancePartitionLeaders` does at most 1,000 per run); the next run
      continues.
    - `delete_topic_enable`: with False, deletion markers are removed and topics kept
      (Kafka's `delete.topic.enable`).
    """

    leader_imbalance_per_broker_percentage: int = 10
    auto_leader_rebalance_enable: bool = True
    max_elections_per_batch: int = 10_000
    delete_topic_enable: bool = True

    def __attrs_post_init__(self) -> None:
        assert 0 <= self.leader_imbalance_per_broker_percentage <= 100
        assert self.max_elections_per_batch >= 1


def become_active(image: MetadataImage, controller_id: int, timestamp_ms: int) -> ControllerResult:
    """Claim the controller role (Kafka's `registerControllerAndIncrementControllerEpoch`):
    create missing `BASE_PATHS`, bump `/controller_epoch` (setData conditional on the version
    the image holds; create with 1 for the first controller ever), replace `/controller` with
    an ephemeral `ControllerInfo(brokerid=controller_id, timestamp=str(timestamp_ms))`.
    The conditional epoch write is the fencing check of the multi. reply: the new epoch."""
    assert controller_id >= 0
    ops: list[TreeOp] = list(base_path_ops(image))
    if image.controller_epoch_version >= 0:
        epoch = image.controller_epoch + 1
        ops.append(
            SetDataOp(
                r.CONTROLLER_EPOCH, r.encode_epoch(epoch), version=image.controller_epoch_version
            )
        )
    else:
        epoch = 1
        ops.append(CreateOp(r.CONTROLLER_EPOCH, r.encode_epoch(epoch)))
    if image.controller is not None:
        ops.append(DeleteOp(r.CONTROLLER))
    info = ControllerInfo(brokerid=controller_id, timestamp=str(timestamp_ms))
    ops.append(CreateOp(r.CONTROLLER, r.encode(info), ephemeral=True))
    message = f"controller {controller_id} is active with controller epoch {epoch}"
    return ControllerResult(tuple(ops), epoch, (message,))


def reconcile(
    image: MetadataImage, settings: ControllerSettings, *, since: MetadataImage | None = None
) -> ControllerResult:
    """Every change the image needs now; no ops when it is consistent. Applying the ops and
    reconciling the resulting image returns no ops (each partition rule is a fixed point).

    `since`: an earlier image for which `reconcile` returned no ops (the shell's last
    consistent image). The result is the same, but only topics that changed since then
    (`TopicImage` not shared with `since`, or a different config) and partitions naming a
    broker whose liveness changed are examined, instead of every partition per event.

    In order: (a) topic deletions (`TopicDeletionManager`): the topic's subtree bottom-up,
    its config, then the marker (only the marker for an unknown topic or with
    `delete_topic_enable` False); (b) partition states of partitions without one
    (`new_partition_state`), after their missing `partitions` znodes; (c) leader and ISR
    changes (`decide_partition`); (d) a pending preferred replica election (on top of (c)),
    then the request znode's deletion. Topics being deleted take no part in (b)-(d).
    reply: the number of partition states written."""
    status = liveness(image)
    deleting = image.delete_requests if settings.delete_topic_enable else frozenset()
    ops: list[TreeOp] = []
    messages: list[str] = []
    for name in sorted(image.delete_requests):
        _delete_topic_ops(image, name, name in deleting, ops, messages)
    changed: dict[PartitionKey, PartitionState] = {}
    created = 0
    previous = _comparable(since, image)
    touched: frozenset[int] = frozenset()
    if previous is not None:
        before = liveness(previous)
        touched = (status.live ^ before.live) | (status.shutting ^ before.shutting)
    for name in sorted(image.topics):
        if name in deleting:
            continue
        topic = image.topics[name]
        whole = (
            previous is None
            or previous.topics.get(name) is not topic
            or previous.topic_config(name) != image.topic_config(name)
        )
        if not whole and not touched:
            continue  # unchanged, and was consistent
        if whole:
            created += _new_partition_ops(image, topic, status, ops, messages)
        unclean = unclean_enabled(image.topic_config(name))
        for partition in sorted(topic.partitions):
            replicas = topic.replicas(partition)
            if not replicas:
                continue  # a state without an assignment entry: not ours to touch
            old = topic.partitions[partition].state
            if not whole and not _names_any(old, replicas, touched):
                continue  # nothing it depends on changed
            decision = decide_partition(old, replicas, status, unclean, image.controller_epoch)
            if decision is not None:
                changed[(name, partition)] = decision.state
                messages.append(
                    describe_change(name, partition, old, decision.state, decision.reasons)
                )
    if image.preferred_election is not None:
        refs = [(ref.topic, ref.partition) for ref in image.preferred_election] or None
        _elect_preferred_into(image, refs, status, deleting, changed, messages)
    ops.extend(_state_ops(image, changed))
    if image.preferred_election is not None:
        ops.append(DeleteOp(r.PREFERRED_REPLICA_ELECTION, version=image.preferred_election_version))
    return ControllerResult(tuple(ops), created + len(changed), tuple(messages))


def _comparable(since: MetadataImage | None, image: MetadataImage) -> MetadataImage | None:
    """`since` if reconcile may look only at what changed after it, else None (full pass)."""
    if since is None or since is image:
        return since
    if since.delete_requests or image.delete_requests:
        return None  # deletions are rare: keep their interplay simple
    if since.preferred_election is not None:
        return None
    return since


def _names_any(state: PartitionState, replicas: tuple[int, ...], brokers: frozenset[int]) -> bool:
    """Whether a partition's decision may depend on one of `brokers`."""
    return (
        state.leader in brokers
        or not brokers.isdisjoint(replicas)
        or not brokers.isdisjoint(state.isr)
    )


def _delete_topic_ops(
    image: MetadataImage, name: str, delete: bool, ops: list[TreeOp], messages: list[str]
) -> None:
    topic = image.topics.get(name)
    if topic is not None and delete:
        for partition in sorted(set(topic.partitions) | topic.partition_dirs):
            state = topic.partitions.get(partition)
            if state is not None:
                ops.append(DeleteOp(r.state_path(name, partition), version=state.version))
            if partition in topic.partition_dirs:
                ops.append(DeleteOp(r.partition_path(name, partition)))
        if topic.partitions_dir:
            ops.append(DeleteOp(r.partitions_path(name)))
        ops.append(DeleteOp(r.topic_path(name), version=topic.assignment_version))
        if name in image.topic_configs:
            ops.append(DeleteOp(r.topic_config_path(name)))
        messages.append(f"deleted topic {name!r} ({len(topic.assignment)} partitions)")
    elif topic is not None:
        messages.append(f"topic {name!r} not deleted: topic deletion is disabled")
    else:
        messages.append(f"removed the deletion marker of unknown topic {name!r}")
    ops.append(DeleteOp(r.delete_topic_path(name)))


def _new_partition_ops(
    image: MetadataImage,
    topic: TopicImage,
    status: Liveness,
    ops: list[TreeOp],
    messages: list[str],
) -> int:
    """Create the states of assigned partitions that have none; returns how many."""
    missing = [p for p in sorted(topic.assignment) if p not in topic.partitions]
    if not missing:
        return 0
    name = topic.name
    if not topic.partitions_dir:
        ops.append(CreateOp(r.partitions_path(name)))
    for partition in missing:
        if partition not in topic.partition_dirs:
            ops.append(CreateOp(r.partition_path(name, partition)))
        state = new_partition_state(topic.replicas(partition), status, image.controller_epoch)
        ops.append(CreateOp(r.state_path(name, partition), r.encode(state)))
        messages.append(
            f"{name}-{partition}: new partition, leader {state.leader}, isr {list(state.isr)}"
        )
    return len(missing)


def _state_ops(
    image: MetadataImage, changed: Mapping[PartitionKey, PartitionState]
) -> list[TreeOp]:
    ops: list[TreeOp] = []
    for name, partition in sorted(changed):
        version = image.topics[name].partitions[partition].version
        state = changed[(name, partition)]
        ops.append(SetDataOp(r.state_path(name, partition), r.encode(state), version=version))
    return ops


def _all_partitions(image: MetadataImage, skip: frozenset[str]) -> list[PartitionKey]:
    return [
        (name, partition)
        for name in sorted(image.topics)
        if name not in skip
        for partition in sorted(image.topics[name].partitions)
    ]


def _elect_preferred_into(
    image: MetadataImage,
    refs: Iterable[PartitionKey] | None,
    status: Liveness,
    skip: frozenset[str],
    changed: dict[PartitionKey, PartitionState],
    messages: list[str],
) -> dict[PartitionKey, str]:
    """Preferred elections on top of the states in `changed` (else the image's); adds the
    elected states to `changed` and returns Kafka's per-partition outcome."""
    outcomes: dict[PartitionKey, str] = {}
    keys = _all_partitions(image, skip) if refs is None else list(dict.fromkeys(refs))
    for key in keys:
        name, partition = key
        topic = image.topics.get(name)
        part = topic.partitions.get(partition) if topic is not None else None
        if topic is None or part is None or name in skip:
            outcomes[key] = UNKNOWN_TOPIC_OR_PARTITION
            continue
        old = changed.get(key, part.state)
        outcome, new = preferred_decision(
            old, topic.replicas(partition), status, image.controller_epoch
        )
        outcomes[key] = outcome
        if new is not None:
            changed[key] = new
            messages.append(describe_change(name, partition, old, new, ["preferred leader"]))
    return outcomes


def elect_preferred(
    image: MetadataImage, refs: Iterable[tuple[str, int]] | None
) -> ControllerResult:
    """Preferred replica election (`kafka-leader-election.sh --election-type PREFERRED`) of
    the given (topic, partition) refs, None = all partitions: `replicas[0]` leads where it is
    active and in the ISR (`preferred_decision`). reply: {(topic, partition): Kafka error
    name} (NONE, ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
    UNKNOWN_TOPIC_OR_PARTITION; partitions of topics being deleted count as unknown)."""
    changed: dict[PartitionKey, PartitionState] = {}
    messages: list[str] = []
    outcomes = _elect_preferred_into(
        image, refs, liveness(image), image.delete_requests, changed, messages
    )
    return ControllerResult(tuple(_state_ops(image, changed)), outcomes, tuple(messages))


def rebalance_preferred(image: MetadataImage, settings: ControllerSettings) -> ControllerResult:
    """Kafka's auto leader rebalance (`KafkaController.checkAndTriggerAutoLeaderRebalance`):
    for each broker, imbalance = (partitions it is preferred for but does not lead) /
    (partitions it is preferred for); above `leader_imbalance_per_broker_percentage` percent,
    those partitions get a preferred election where the preferred replica is active and in
    the ISR, at most `max_elections_per_batch` in all. No ops when
    `auto_leader_rebalance_enable` is False.

    Partitions that `reconcile(image)` would change are skipped (and nothing is done while a
    preferred election request is pending), so its result may be added to reconcile's for
    the same image without two writes to one partition. reply: the number of elections."""
    if not settings.auto_leader_rebalance_enable or image.preferred_election is not None:
        return ControllerResult((), 0, ())
    status = liveness(image)
    preferred_of: dict[int, list[PartitionKey]] = {}
    for key in _all_partitions(image, image.delete_requests):
        replicas = image.topics[key[0]].replicas(key[1])
        if replicas:
            preferred_of.setdefault(replicas[0], []).append(key)
    candidates: list[PartitionKey] = []
    messages: list[str] = []
    percentage = settings.leader_imbalance_per_broker_percentage
    for broker in sorted(preferred_of):
        keys = preferred_of[broker]
        elsewhere = [k for k in keys if _leader(image, k) != broker]
        if len(elsewhere) * 100 > percentage * len(keys):
            messages.append(
                f"broker {broker} leads {len(keys) - len(elsewhere)} of the {len(keys)} "
                f"partitions it is preferred for (imbalance above {percentage}%)"
            )
            candidates.extend(elsewhere)
    changed: dict[PartitionKey, PartitionState] = {}
    for key in sorted(candidates):
        if len(changed) >= settings.max_elections_per_batch:
            break
        name, partition = key
        topic = image.topics[name]
        part = topic.partitions[partition]
        replicas = topic.replicas(partition)
        unclean = unclean_enabled(image.topic_config(name))
        if decide_partition(part.state, replicas, status, unclean, image.controller_epoch):
            continue  # reconcile's business first
        outcome, new = preferred_decision(part.state, replicas, status, image.controller_epoch)
        if outcome == ELECTION_NONE and new is not None:
            changed[key] = new
            messages.append(describe_change(name, partition, part.state, new, ["rebalance"]))
    if not changed:
        return ControllerResult((), 0, ())
    return ControllerResult(tuple(_state_ops(image, changed)), len(changed), tuple(messages))


def _leader(image: MetadataImage, key: PartitionKey) -> int:
    return image.topics[key[0]].partitions[key[1]].leader


def partitions_led_by(image: MetadataImage, broker_id: int) -> list[tuple[str, int]]:
    """(topic, partition) pairs whose state names `broker_id` leader, sorted."""
    return [k for k in _all_partitions(image, frozenset()) if _leader(image, k) == broker_id]


def offline_partitions(image: MetadataImage) -> list[tuple[str, int]]:
    """(topic, partition) pairs without a live leader (leader -1 or not registered), sorted."""
    return [k for k in _all_partitions(image, frozenset()) if not image.is_live(_leader(image, k))]


def under_replicated_partitions(image: MetadataImage) -> list[tuple[str, int]]:
    """(topic, partition) pairs whose ISR is smaller than their replica list, sorted."""
    return [
        (name, partition)
        for name, partition in _all_partitions(image, frozenset())
        if len(image.topics[name].partitions[partition].isr)
        < len(image.topics[name].replicas(partition))
    ]


def leader_counts(image: MetadataImage) -> dict[int, int]:
    """{broker id: partitions it leads}, with 0 for every live broker leading none; sorted by
    id. Leaderless partitions are not counted."""
    counts = dict.fromkeys(sorted(image.brokers), 0)
    for key in _all_partitions(image, frozenset()):
        leader = _leader(image, key)
        if leader != r.NO_LEADER:
            counts[leader] = counts.get(leader, 0) + 1
    return dict(sorted(counts.items()))
