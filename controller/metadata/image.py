"""`MetadataImage`: an immutable view of brokers, topics, partitions and admin requests, as
the coordination tree holds them, updated from deltas (`MetadataDelta`), never rebuilt per
event (the shape of Kafka's `MetadataImage`/`MetadataDelta`).

The shell feeds the delta the znodes an applied entry touched (`replay(path, node)`, with
the node as the tree holds it after the entry, or None if it is gone) and publishes
`delta.apply(zxid)`. Malformed payloads (someone wrote garbage with zkCli) are treated as
absent, so one bad znode cannot stop the controller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from controller.metadata import records as r
from controller.metadata.records import (
    BrokerRegistration,
    ControlledShutdownRequest,
    ControllerInfo,
    PartitionRef,
    PartitionState,
    PreferredReplicaElection,
    RecordError,
    TopicAssignment,
    TopicConfig,
)

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


@attrs.frozen
class ZnodeView:
    """What the pure layer sees of one znode: payload and the stat fields it uses."""

    data: bytes
    version: int
    czxid: int
    mzxid: int
    ephemeral_owner: int = 0


@attrs.frozen
class BrokerImage:
    """A registered (hence live) broker. `epoch` is the czxid of `/brokers/ids/<id>`
    (Kafka's broker epoch, KIP-380)."""

    id: int
    registration: BrokerRegistration
    epoch: int
    session_id: int

    @property
    def rack(self) -> str | None:
        return self.registration.rack


@attrs.frozen
class PartitionImage:
    """A partition's state znode. `version` is the znode's data version (Kafka's partition
    epoch): every controller update is conditional on it."""

    partition: int
    state: PartitionState
    version: int
    mzxid: int

    @property
    def leader(self) -> int:
        return self.state.leader

    @property
    def leader_epoch(self) -> int:
        return self.state.leader_epoch

    @property
    def isr(self) -> tuple[int, ...]:
        return tuple(self.state.isr)


@attrs.frozen
class TopicImage:
    """A topic: its assignment (`/brokers/topics/<t>`), the partition states written so far,
    and which intermediate `partitions` znodes exist."""

    name: str
    topic_id: str
    assignment: Mapping[int, tuple[int, ...]]
    assignment_version: int
    partitions: Mapping[int, PartitionImage] = _EMPTY
    partitions_dir: bool = False
    partition_dirs: frozenset[int] = frozenset()

    def replicas(self, partition: int) -> tuple[int, ...]:
        return self.assignment.get(partition, ())


@attrs.frozen
class MetadataImage:
    """Everything the broker controller decides from. Immutable; mappings are read-only."""

    brokers: Mapping[int, BrokerImage] = _EMPTY
    topics: Mapping[str, TopicImage] = _EMPTY
    topic_configs: Mapping[str, Mapping[str, str]] = _EMPTY
    controller: ControllerInfo | None = None
    controller_epoch: int = 0
    controller_epoch_version: int = -1  # -1: /controller_epoch does not exist
    delete_requests: frozenset[str] = frozenset()
    preferred_election: tuple[PartitionRef, ...] | None = None  # None: no request node
    preferred_election_version: int = -1
    shutdown_requests: Mapping[int, int] = _EMPTY  # broker id -> broker epoch it gave
    base_paths: frozenset[str] = frozenset()
    zxid: int = 0  # the last applied zxid this image reflects

    def is_live(self, broker_id: int) -> bool:
        return broker_id in self.brokers

    def topic_config(self, topic: str) -> Mapping[str, str]:
        return self.topic_configs.get(topic, _EMPTY)

    def partition_count(self) -> int:
        return sum(len(t.assignment) for t in self.topics.values())


EMPTY_IMAGE = MetadataImage()

METADATA_PREFIXES = ("/brokers", "/config", "/admin", "/controller")


def is_metadata_path(path: str) -> bool:
    """Whether a znode path can change the image (cheap prefix test for the apply path)."""
    return path.startswith(METADATA_PREFIXES)


class _TopicBuilder:
    __slots__ = ("assignment", "base", "dirs", "name", "parts", "parts_dir", "topic_id", "version")

    def __init__(self, base: TopicImage) -> None:
        self.base = base
        self.name = base.name
        self.topic_id = base.topic_id
        self.assignment = base.assignment
        self.version = base.assignment_version
        self.parts: dict[int, PartitionImage] | None = None
        self.parts_dir = base.partitions_dir
        self.dirs: set[int] | None = None

    def partitions(self) -> dict[int, PartitionImage]:
        if self.parts is None:
            self.parts = dict(self.base.partitions)
        return self.parts

    def partition_dirs(self) -> set[int]:
        if self.dirs is None:
            self.dirs = set(self.base.partition_dirs)
        return self.dirs

    def build(self) -> TopicImage:
        return TopicImage(
            self.name,
            self.topic_id,
            self.assignment,
            self.version,
            MappingProxyType(self.parts) if self.parts is not None else self.base.partitions,
            self.parts_dir,
            frozenset(self.dirs) if self.dirs is not None else self.base.partition_dirs,
        )


class MetadataDelta:
    """Accumulates znode changes on top of an image; `apply` returns the new image.
    Copy-on-write: untouched topics and maps are shared with the base image."""

    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        self._brokers: dict[int, BrokerImage] | None = None
        self._topics: dict[str, TopicImage | None] = {}  # None: deleted
        self._builders: dict[str, _TopicBuilder] = {}
        self._configs: dict[str, Mapping[str, str] | None] = {}
        self._changes: dict[str, Any] = {}
        self._deletes: set[str] | None = None
        self._shutdowns: dict[int, int] | None = None
        self._base_paths: set[str] | None = None

    # ------------------------------------------------------------------ replay

    def replay(self, path: str, node: ZnodeView | None) -> None:
        """Record that `path` now holds `node` (None: deleted). Paths outside the metadata
        layout are ignored."""
        parts = path.split("/")[1:]
        n = len(parts)
        head = parts[0]
        if head == "brokers":
            if n == 3 and parts[1] == "ids":
                self._broker(parts[2], node)
            elif n >= 3 and parts[1] == "topics":
                self._topic_path(parts[2], parts[3:], node)
            elif n <= 2:
                self._base(path, node)
        elif head == "config":
            if n == 3 and parts[1] == "topics":
                self._config(parts[2], node)
            elif n <= 2:
                self._base(path, node)
        elif head == "admin":
            if n == 3 and parts[1] == "delete_topics":
                self._delete_request(parts[2], node)
            elif n == 3 and parts[1] == "controlled_shutdown":
                self._shutdown_request(parts[2], node)
            elif n == 2 and parts[1] == "preferred_replica_election":
                self._preferred(node)
            elif n <= 2:
                self._base(path, node)
        elif n == 1 and head == "controller":
            self._changes["controller"] = _decode_or_none(node, ControllerInfo)
        elif n == 1 and head == "controller_epoch":
            epoch = 0
            if node is not None:
                try:
                    epoch = r.decode_epoch(node.data)
                except RecordError:
                    epoch = 0
            self._changes["controller_epoch"] = epoch
            self._changes["controller_epoch_version"] = -1 if node is None else node.version

    def _base(self, path: str, node: ZnodeView | None) -> None:
        if path not in r.BASE_PATHS:
            return
        if self._base_paths is None:
            self._base_paths = set(self.image.base_paths)
        if node is None:
            self._base_paths.discard(path)
        else:
            self._base_paths.add(path)

    def _broker(self, name: str, node: ZnodeView | None) -> None:
        try:
            broker_id = int(name)
        except ValueError:
            return
        if self._brokers is None:
            self._brokers = dict(self.image.brokers)
        registration = _decode_or_none(node, BrokerRegistration)
        if node is None or registration is None:
            self._brokers.pop(broker_id, None)
        else:
            self._brokers[broker_id] = BrokerImage(
                broker_id, registration, node.czxid, node.ephemeral_owner
            )

    def _builder(self, topic: str) -> _TopicBuilder | None:
        builder = self._builders.get(topic)
        if builder is not None:
            return builder
        base = self._topics[topic] if topic in self._topics else self.image.topics.get(topic)
        if base is None:
            return None
        builder = self._builders[topic] = _TopicBuilder(base)
        return builder

    def _topic_path(self, topic: str, rest: list[str], node: ZnodeView | None) -> None:
        if not rest:
            assignment = _decode_or_none(node, TopicAssignment)
            if node is None or assignment is None:
                self._builders.pop(topic, None)
                self._topics[topic] = None
                return
            try:
                replicas = assignment.replicas()
            except ValueError:
                return
            builder = self._builder(topic)
            if builder is None:
                self._topics[topic] = TopicImage(
                    topic, assignment.topic_id, MappingProxyType(replicas), node.version
                )
                return
            builder.topic_id = assignment.topic_id
            builder.assignment = MappingProxyType(replicas)
            builder.version = node.version
            return
        builder = self._builder(topic)
        if builder is None or rest[0] != "partitions":
            return
        if len(rest) == 1:
            builder.parts_dir = node is not None
            return
        try:
            partition = int(rest[1])
        except ValueError:
            return
        if len(rest) == 2:
            dirs = builder.partition_dirs()
            if node is None:
                dirs.discard(partition)
            else:
                dirs.add(partition)
            return
        if len(rest) == 3 and rest[2] == "state":
            state = _decode_or_none(node, PartitionState)
            parts = builder.partitions()
            if node is None or state is None:
                parts.pop(partition, None)
            else:
                parts[partition] = PartitionImage(partition, state, node.version, node.mzxid)

    def _config(self, topic: str, node: ZnodeView | None) -> None:
        config = _decode_or_none(node, TopicConfig)
        self._configs[topic] = None if config is None else MappingProxyType(dict(config.config))

    def _delete_request(self, topic: str, node: ZnodeView | None) -> None:
        if self._deletes is None:
            self._deletes = set(self.image.delete_requests)
        if node is None:
            self._deletes.discard(topic)
        else:
            self._deletes.add(topic)

    def _shutdown_request(self, name: str, node: ZnodeView | None) -> None:
        try:
            broker_id = int(name)
        except ValueError:
            return
        if self._shutdowns is None:
            self._shutdowns = dict(self.image.shutdown_requests)
        request = _decode_or_none(node, ControlledShutdownRequest)
        if request is None:
            self._shutdowns.pop(broker_id, None)
        else:
            self._shutdowns[broker_id] = request.broker_epoch

    def _preferred(self, node: ZnodeView | None) -> None:
        request = _decode_or_none(node, PreferredReplicaElection)
        if node is None:
            self._changes["preferred_election"] = None
            self._changes["preferred_election_version"] = -1
            return
        self._changes["preferred_election"] = (
            tuple(request.partitions) if request is not None else ()
        )
        self._changes["preferred_election_version"] = node.version

    # ------------------------------------------------------------------ apply

    def apply(self, zxid: int) -> MetadataImage:
        image = self.image
        changes: dict[str, Any] = dict(self._changes)
        changes["zxid"] = max(zxid, image.zxid)
        if self._brokers is not None:
            changes["brokers"] = MappingProxyType(self._brokers)
        if self._topics or self._builders:
            topics = dict(image.topics)
            for name, topic in self._topics.items():
                if topic is None:
                    topics.pop(name, None)
                else:
                    topics[name] = topic
            for name, builder in self._builders.items():
                topics[name] = builder.build()
            changes["topics"] = MappingProxyType(topics)
        if self._configs:
            configs = dict(image.topic_configs)
            for name, config in self._configs.items():
                if config is None:
                    configs.pop(name, None)
                else:
                    configs[name] = config
            changes["topic_configs"] = MappingProxyType(configs)
        if self._deletes is not None:
            changes["delete_requests"] = frozenset(self._deletes)
        if self._shutdowns is not None:
            changes["shutdown_requests"] = MappingProxyType(self._shutdowns)
        if self._base_paths is not None:
            changes["base_paths"] = frozenset(self._base_paths)
        return attrs.evolve(image, **changes)


def image_from_nodes(nodes: Iterable[tuple[str, ZnodeView]], zxid: int) -> MetadataImage:
    """Build an image from scratch (startup, snapshot loaded): parents before children."""
    delta = MetadataDelta(EMPTY_IMAGE)
    for path, node in sorted(nodes, key=lambda item: item[0].count("/")):
        if is_metadata_path(path):
            delta.replay(path, node)
    return delta.apply(zxid)


def _decode_or_none(node: ZnodeView | None, cls: type[Any]) -> Any:
    if node is None:
        return None
    try:
        return r.decode(node.data, cls)
    except RecordError:
        return None
