"""Topic administration as the admin CLI does it (pure): name rules, replica placement, and the
tree operations of Kafka's ZooKeeper-era `AdminZkClient` (create, add partitions, delete).

The admin writes only the topic's config and assignment (or a deletion marker); the active
controller then creates partition states or deletes the topic (`controller.metadata.decisions`).
Every function takes the randomness it needs as a `random.Random`.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping, Sequence

from controller.metadata import records as r
from controller.metadata.image import MetadataImage
from controller.metadata.ops import ControllerResult, CreateOp, SetDataOp, TreeOp
from controller.metadata.records import TopicAssignment, TopicConfig
from controller.metadata.topic_configs import config_problem

# Kafka error names (`org.apache.kafka.common.protocol.Errors`).
INVALID_TOPIC_EXCEPTION = "INVALID_TOPIC_EXCEPTION"
TOPIC_ALREADY_EXISTS = "TOPIC_ALREADY_EXISTS"
INVALID_REPLICATION_FACTOR = "INVALID_REPLICATION_FACTOR"
INVALID_PARTITIONS = "INVALID_PARTITIONS"
UNKNOWN_TOPIC_OR_PARTITION = "UNKNOWN_TOPIC_OR_PARTITION"
INVALID_CONFIG = "INVALID_CONFIG"

MAX_NAME_LENGTH = 249  # Kafka's `Topic.MAX_NAME_LENGTH`
MAX_PARTITIONS_PER_TOPIC = 10_000  # ours: keeps one assignment znode far below 1 MiB
_LEGAL_CHARS = frozenset(string.ascii_letters + string.digits + "._-")


class MetadataError(Exception):
    """A rejected admin request: `code` is the Kafka error name (e.g. `TOPIC_ALREADY_EXISTS`),
    the message one line naming the object (`topic 'orders': ...`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate_topic_name(name: str) -> str | None:
    """Kafka's topic name rules (`Topic.validate`): not empty, not `.` or `..`, at most 249
    characters, only ASCII letters, digits, `.`, `_` and `-`. Returns what is wrong, or None."""
    if not name:
        return "topic name is empty"
    if name in (".", ".."):
        return f"topic name {name!r} is not allowed"
    if len(name) > MAX_NAME_LENGTH:
        return f"topic name is {len(name)} characters long, more than {MAX_NAME_LENGTH}"
    bad = next((c for c in name if c not in _LEGAL_CHARS), None)
    if bad is not None:
        return (
            f"topic name contains the illegal character {bad!r} "
            "(legal: ASCII letters, digits, '.', '_' and '-')"
        )
    return None


def _quoted(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")


def _fail(code: str, topic: str, problem: str) -> MetadataError:
    return MetadataError(code, f"topic {_quoted(topic)}: {problem}")


def place_replicas(
    brokers: Sequence[tuple[int, str | None]],
    partitions: int,
    replication_factor: int,
    rng: random.Random,
    *,
    first_partition: int = 0,
) -> dict[int, tuple[int, ...]]:
    """Rack-aware striped placement after Kafka's `StripedReplicaPlacer`.

    `brokers` are (id, rack) pairs of the usable brokers; all brokers without a rack form one
    group, as Kafka's `Optional.empty()` rack does. Racks are shuffled and brokers shuffled within
    their rack. Leaders cycle through a rack-interleaved list of all brokers from a random
    start, so consecutive partitions start on consecutive racks (the striped p1 = A,B,C;
    p2 = B,C,A pattern) and every broker leads `partitions / brokers` partitions, rounded up or
    down (unlike Kafka, this holds with uneven racks too). Followers take the racks after the
    leader's round-robin, each rack handing out its brokers round-robin from a random start;
    so a partition's replicas are on distinct brokers and cover min(rf, racks) racks.

    Returns {partition number: replicas, preferred leader first} for partitions
    `first_partition .. first_partition + partitions - 1`. Raises MetadataError
    (INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR) when the request cannot be placed.
    """
    if partitions < 1:
        raise MetadataError(INVALID_PARTITIONS, f"number of partitions {partitions} is below 1")
    if replication_factor < 1:
        raise MetadataError(
            INVALID_REPLICATION_FACTOR, f"replication factor {replication_factor} is below 1"
        )
    if replication_factor > len(brokers):
        raise MetadataError(
            INVALID_REPLICATION_FACTOR,
            f"replication factor {replication_factor} is larger than the "
            f"{len(brokers)} live brokers",
        )
    assert first_partition >= 0
    assert len({b for b, _ in brokers}) == len(brokers), "duplicate broker ids"
    by_rack: dict[str | None, list[int]] = {}
    for broker, rack in sorted(brokers, key=lambda item: item[0]):  # input order is irrelevant
        by_rack.setdefault(rack, []).append(broker)
    racks = sorted(by_rack.values())  # deterministic before shuffling (None is not sortable)
    rng.shuffle(racks)
    for rack_brokers in racks:
        rng.shuffle(rack_brokers)
    leaders = [rack[i] for i in range(max(map(len, racks))) for rack in racks if i < len(rack)]
    rack_of = {broker: index for index, rack in enumerate(racks) for broker in rack}
    cursors = [rng.randrange(len(rack)) for rack in racks]
    start = rng.randrange(len(leaders))
    out: dict[int, tuple[int, ...]] = {}
    for i in range(partitions):
        leader = leaders[(start + i) % len(leaders)]
        chosen = [leader]
        rack_index = rack_of[leader]
        # Each pass over the racks adds at least one broker while unchosen brokers remain.
        for _ in range(replication_factor * len(racks)):
            if len(chosen) == replication_factor:
                break
            rack_index = (rack_index + 1) % len(racks)
            follower = _next_in_rack(racks[rack_index], cursors, rack_index, chosen)
            if follower is not None:
                chosen.append(follower)
        assert len(chosen) == replication_factor
        out[first_partition + i] = tuple(chosen)
    return out


def _next_in_rack(
    rack: list[int], cursors: list[int], rack_index: int, chosen: list[int]
) -> int | None:
    """The rack's next broker round-robin that the partition does not have yet."""
    for _ in range(len(rack)):
        broker = rack[cursors[rack_index] % len(rack)]
        cursors[rack_index] += 1
        if broker not in chosen:
            return broker
    return None


def base_path_ops(image: MetadataImage) -> tuple[CreateOp, ...]:
    """CreateOps for the `BASE_PATHS` missing from the image, parents first."""
    return tuple(CreateOp(path) for path in r.BASE_PATHS if path not in image.base_paths)


def _validate_new_topic(
    image: MetadataImage, name: str, partitions: int, replication_factor: int
) -> None:
    """`AdminZkClient.validateTopicCreate`, plus the placement bounds."""
    problem = validate_topic_name(name)
    if problem is not None:
        raise _fail(INVALID_TOPIC_EXCEPTION, name, problem)
    if name in image.delete_requests:
        raise _fail(TOPIC_ALREADY_EXISTS, name, "is marked for deletion")
    if name in image.topics:
        raise _fail(TOPIC_ALREADY_EXISTS, name, "already exists")
    if "." in name or "_" in name:
        # Metric names treat '.' and '_' alike (`Topic.hasCollision`).
        key = name.replace(".", "_")
        other = next((t for t in sorted(image.topics) if t.replace(".", "_") == key), None)
        if other is not None:
            raise _fail(INVALID_TOPIC_EXCEPTION, name, f"collides with existing topic {other!r}")
    if not 1 <= partitions <= MAX_PARTITIONS_PER_TOPIC:
        raise _fail(
            INVALID_PARTITIONS,
            name,
            f"number of partitions {partitions} is outside [1, {MAX_PARTITIONS_PER_TOPIC}]",
        )
    _validate_replication_factor(image, name, replication_factor)


def _validate_replication_factor(image: MetadataImage, name: str, replication_factor: int) -> None:
    if replication_factor < 1:
        raise _fail(
            INVALID_REPLICATION_FACTOR, name, f"replication factor {replication_factor} is below 1"
        )
    if replication_factor > len(image.brokers):
        raise _fail(
            INVALID_REPLICATION_FACTOR,
            name,
            f"replication factor {replication_factor} is larger than the "
            f"{len(image.brokers)} live brokers",
        )


def _validate_config(name: str, config: Mapping[str, str]) -> None:
    """Kafka's topic configs only, with valid values (`topic_configs.TOPIC_CONFIGS`)."""
    for key, value in config.items():
        if not isinstance(value, str):
            raise _fail(INVALID_CONFIG, name, f"config {key} value {value!r} is not a string")
        problem = config_problem(key, value)
        if problem is not None:
            raise _fail(INVALID_CONFIG, name, problem)


def _brokers_with_racks(image: MetadataImage) -> list[tuple[int, str | None]]:
    return [(broker.id, broker.rack) for broker in image.brokers.values()]


def _assignment_json(replicas: Mapping[int, Sequence[int]]) -> dict[str, list[int]]:
    return {str(p): list(replicas[p]) for p in sorted(replicas)}


def create_topic(
    image: MetadataImage,
    name: str,
    partitions: int,
    replication_factor: int,
    config: Mapping[str, str],
    rng: random.Random,
    topic_id: str,
) -> ControllerResult:
    """Create a topic as `AdminZkClient.createTopicWithAssignment` does: validate, place the
    replicas over the live brokers (with racks), then write `/config/topics/<t>` (set if it
    is left over, else create) and `/brokers/topics/<t>` (`TopicAssignment` v3 with
    `topic_id`), after any missing `BASE_PATHS`. The active controller creates the partition
    states when it sees the assignment.

    reply: the assignment, {partition: replicas}. Raises MetadataError
    (INVALID_TOPIC_EXCEPTION, TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
    INVALID_REPLICATION_FACTOR, INVALID_CONFIG)."""
    _validate_new_topic(image, name, partitions, replication_factor)
    _validate_config(name, config)
    assignment = place_replicas(_brokers_with_racks(image), partitions, replication_factor, rng)
    config_data = r.encode(TopicConfig(config=dict(config)))
    config_op: TreeOp
    if name in image.topic_configs:
        config_op = SetDataOp(r.topic_config_path(name), config_data)
    else:
        config_op = CreateOp(r.topic_config_path(name), config_data)
    record = TopicAssignment(partitions=_assignment_json(assignment), topic_id=topic_id)
    ops = (*base_path_ops(image), config_op, CreateOp(r.topic_path(name), r.encode(record)))
    message = (
        f"created topic {name!r} ({topic_id}): {partitions} partitions, "
        f"replication factor {replication_factor}"
    )
    return ControllerResult(ops, assignment, (message,))


def add_partitions(
    image: MetadataImage, name: str, total_partitions: int, rng: random.Random
) -> ControllerResult:
    """Grow a topic to `total_partitions` (`AdminZkClient.addPartitions`): the new partitions
    are placed like a new topic's, with partition 0's replication factor, and the whole
    assignment is rewritten conditionally on its version.

    reply: the new partitions' assignment, {partition: replicas}. Raises MetadataError
    (UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION when queued for deletion,
    INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR)."""
    topic = image.topics.get(name)
    if topic is None:
        raise _fail(UNKNOWN_TOPIC_OR_PARTITION, name, "does not exist")
    if name in image.delete_requests:
        raise _fail(INVALID_TOPIC_EXCEPTION, name, "is queued for deletion")
    if not topic.assignment:
        raise _fail(
            INVALID_PARTITIONS, name, "has no partition to take the replication factor from"
        )
    current = len(topic.assignment)
    if total_partitions <= current:
        raise _fail(
            INVALID_PARTITIONS,
            name,
            f"has {current} partitions; {total_partitions} would not add any",
        )
    if total_partitions > MAX_PARTITIONS_PER_TOPIC:
        raise _fail(
            INVALID_PARTITIONS,
            name,
            f"number of partitions {total_partitions} is above {MAX_PARTITIONS_PER_TOPIC}",
        )
    first = topic.assignment.get(0) or topic.assignment[min(topic.assignment)]
    replication_factor = len(first)
    _validate_replication_factor(image, name, replication_factor)
    first_new = max(topic.assignment) + 1
    added = place_replicas(
        _brokers_with_racks(image),
        total_partitions - current,
        replication_factor,
        rng,
        first_partition=first_new,
    )
    record = TopicAssignment(
        partitions=_assignment_json({**topic.assignment, **added}), topic_id=topic.topic_id
    )
    op = SetDataOp(r.topic_path(name), r.encode(record), version=topic.assignment_version)
    message = f"topic {name!r}: {current} -> {total_partitions} partitions"
    return ControllerResult((op,), added, (message,))


def delete_topic(image: MetadataImage, name: str) -> ControllerResult:
    """Mark a topic for deletion (`AdminZkClient.deleteTopic`): create
    `/admin/delete_topics/<t>` (after any missing `BASE_PATHS`); the active controller does
    the rest. No ops when it is already marked. reply: True if a marker is written. Raises
    MetadataError UNKNOWN_TOPIC_OR_PARTITION for an unknown topic."""
    if name not in image.topics:
        raise _fail(UNKNOWN_TOPIC_OR_PARTITION, name, "does not exist")
    if name in image.delete_requests:
        return ControllerResult((), False, (f"topic {name!r} is already marked for deletion",))
    ops = (*base_path_ops(image), CreateOp(r.delete_topic_path(name)))
    return ControllerResult(ops, True, (f"topic {name!r} marked for deletion",))
