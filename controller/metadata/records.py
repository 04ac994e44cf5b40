"""Znode payloads of Kafka's ZooKeeper-era metadata layout, as typed attrs records.

Shapes follow Kafka's `ZkData.scala` (see docs/broker-controller.md): compact JSON, unknown
keys ignored on read so other writers' extra fields do not break us. `/controller_epoch`
holds a plain decimal, not JSON.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import attrs
from cattrs.preconf.json import make_converter

BROKERS = "/brokers"
BROKER_IDS = "/brokers/ids"
BROKER_TOPICS = "/brokers/topics"
CONFIG = "/config"
CONFIG_TOPICS = "/config/topics"
ADMIN = "/admin"
DELETE_TOPICS = "/admin/delete_topics"
CONTROLLED_SHUTDOWN = "/admin/controlled_shutdown"  # ours: Kafka used an RPC (apiKey 7)
PREFERRED_REPLICA_ELECTION = "/admin/preferred_replica_election"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"

BASE_PATHS: tuple[str, ...] = (
    BROKERS,
    BROKER_IDS,
    BROKER_TOPICS,
    CONFIG,
    CONFIG_TOPICS,
    ADMIN,
    DELETE_TOPICS,
    CONTROLLED_SHUTDOWN,
)
"""Persistent parents every writer may assume once the first active controller ran
(parents before children)."""

NO_LEADER = -1


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions"


def partition_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}"


def state_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}/state"


def topic_config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def delete_topic_path(topic: str) -> str:
    return f"{DELETE_TOPICS}/{topic}"


def controlled_shutdown_path(broker_id: int) -> str:
    return f"{CONTROLLED_SHUTDOWN}/{broker_id}"


@attrs.frozen
class BrokerRegistration:
    """`/brokers/ids/<id>` (ephemeral), version 5. Kafka writes `timestamp` as a string of
    epoch milliseconds; `rack` is null when unset."""

    host: str
    port: int
    endpoints: list[str]
    rack: str | None
    timestamp: str
    incarnation_id: str
    version: int = 5
    jmx_port: int = -1


@attrs.frozen
class TopicAssignment:
    """`/brokers/topics/<topic>`, version 3: replica assignment per partition (partition
    numbers as strings, preferred leader first)."""

    partitions: dict[str, list[int]]
    topic_id: str = ""
    version: int = 3
    adding_replicas: dict[str, list[int]] = attrs.Factory(dict)
    removing_replicas: dict[str, list[int]] = attrs.Factory(dict)

    def replicas(self) -> dict[int, tuple[int, ...]]:
        return {int(p): tuple(r) for p, r in self.partitions.items()}


@attrs.frozen
class PartitionState:
    """`/brokers/topics/<t>/partitions/<p>/state`, version 1 (`leader` -1: offline). The
    znode's data version is the partition epoch."""

    leader: int
    leader_epoch: int
    isr: list[int]
    controller_epoch: int
    version: int = 1


@attrs.frozen
class ControllerInfo:
    """`/controller` (ephemeral), version 2: the active controller's id."""

    brokerid: int
    timestamp: str
    version: int = 2
    kraftControllerEpoch: int = -1  # Kafka's JSON key, camel case


@attrs.frozen
class TopicConfig:
    """`/config/topics/<topic>`: topic configuration overrides, values as strings."""

    config: dict[str, str]
    version: int = 1


@attrs.frozen
class PartitionRef:
    """One entry of `/admin/preferred_replica_election`."""

    topic: str
    partition: int


@attrs.frozen
class PreferredReplicaElection:
    """`/admin/preferred_replica_election`: partitions whose preferred replica should lead."""

    partitions: list[PartitionRef]
    version: int = 1


@attrs.frozen
class ControlledShutdownRequest:
    """`/admin/controlled_shutdown/<id>` (ephemeral, ours): a broker asks the controller to
    move its leaderships away before it stops (Kafka's ControlledShutdown RPC)."""

    broker_epoch: int
    version: int = 1


class RecordError(ValueError):
    """A znode's payload could not be decoded as the expected record."""


_converter = make_converter()
T = TypeVar("T")


def encode(record: object) -> bytes:
    """Compact JSON bytes, as Kafka writes them."""
    data: dict[str, Any] = _converter.unstructure(record)
    return json.dumps(data, separators=(",", ":")).encode()


def decode(data: bytes, cls: type[T]) -> T:
    """Parse a znode payload; raises RecordError on malformed input."""
    try:
        return _converter.structure(json.loads(data), cls)
    except Exception as exc:  # json, cattrs' ClassValidationError, ...
        raise RecordError(f"not a {cls.__name__}: {exc}") from None


def encode_epoch(epoch: int) -> bytes:
    """`/controller_epoch` holds a plain decimal."""
    return str(epoch).encode()


def decode_epoch(data: bytes) -> int:
    try:
        return int(data.decode().strip() or "0")
    except ValueError:
        raise RecordError(f"not a controller epoch: {data[:40]!r}") from None
