"""A tiny simulated coordination tree for the metadata decisions' tests.

`SimTree.apply(ops)` applies tree ops as one atomic multi with ZooKeeper's rules (parent must
exist, create fails on an existing node, conditional versions, delete only leaves), keeping
version/czxid/mzxid/ephemeral-owner bookkeeping, and feeds every touched path into a
`MetadataDelta`, so tests run the whole loop image -> decision -> ops -> new image.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from controller.metadata import records as r
from controller.metadata.decisions import ControllerSettings, become_active, reconcile
from controller.metadata.image import (
    EMPTY_IMAGE,
    MetadataDelta,
    MetadataImage,
    PartitionImage,
    ZnodeView,
    image_from_nodes,
)
from controller.metadata.ops import CheckOp, ControllerResult, CreateOp, DeleteOp, SetDataOp, TreeOp
from controller.metadata.placement import create_topic


class MultiError(Exception):
    """A multi failed; nothing was applied. `index` is the failing op."""

    def __init__(self, index: int, op: TreeOp, reason: str) -> None:
        super().__init__(f"op {index} {op!r}: {reason}")
        self.index = index
        self.op = op
        self.reason = reason


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


class SimTree:
    """path -> ZnodeView, plus the metadata image kept current by deltas."""

    def __init__(self) -> None:
        self.nodes: dict[str, ZnodeView] = {}
        self.zxid = 0
        self.image: MetadataImage = EMPTY_IMAGE
        self.next_session = 100
        self.broker_sessions: dict[int, int] = {}

    def exists(self, path: str) -> bool:
        return path == "/" or path in self.nodes

    def children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted(p for p in self.nodes if p.startswith(prefix) and "/" not in p[len(prefix) :])

    def subtree(self, path: str) -> list[str]:
        return sorted(p for p in self.nodes if p == path or p.startswith(path + "/"))

    def apply(self, ops: Iterable[TreeOp], session: int = 1) -> MetadataImage:
        """Apply ops atomically (one zxid); raise MultiError and change nothing on failure."""
        nodes = dict(self.nodes)
        zxid = self.zxid + 1
        touched: list[str] = []
        for index, op in enumerate(ops):
            problem = _apply_one(nodes, op, zxid, session)
            if problem is not None:
                raise MultiError(index, op, problem)
            touched.append(op.path)
        if not touched:
            return self.image
        self.nodes = nodes
        self.zxid = zxid
        delta = MetadataDelta(self.image)
        for path in dict.fromkeys(touched):
            delta.replay(path, nodes.get(path))
        self.image = delta.apply(zxid)
        return self.image

    def run(self, result: ControllerResult, session: int = 1) -> MetadataImage:
        return self.apply(result.ops, session)

    def rebuilt_image(self) -> MetadataImage:
        """The image built from scratch from the current nodes (must equal `image`)."""
        return image_from_nodes(self.nodes.items(), self.zxid)

    # ------------------------------------------------------------------ actors

    def new_session(self) -> int:
        self.next_session += 1
        return self.next_session

    def close_session(self, session: int) -> None:
        """ZooKeeper's closeSession: the session's ephemerals go, deepest first."""
        doomed = [p for p, n in self.nodes.items() if n.ephemeral_owner == session]
        doomed.sort(key=lambda p: -p.count("/"))
        self.apply([DeleteOp(p) for p in doomed], session)

    def register_broker(self, broker_id: int, rack: str | None = None) -> int:
        assert broker_id not in self.broker_sessions
        session = self.new_session()
        registration = r.BrokerRegistration(
            host="127.0.0.1",
            port=9092 + broker_id,
            endpoints=[f"PLAINTEXT://127.0.0.1:{9092 + broker_id}"],
            rack=rack,
            timestamp="0",
            incarnation_id=f"inc-{session}",
        )
        op = CreateOp(r.broker_path(broker_id), r.encode(registration), ephemeral=True)
        self.apply([op], session)
        self.broker_sessions[broker_id] = session
        return session

    def kill_broker(self, broker_id: int) -> None:
        self.close_session(self.broker_sessions.pop(broker_id))

    def request_shutdown(self, broker_id: int, epoch: int | None = None) -> None:
        """The broker asks for a controlled shutdown (ephemeral, owned by its session)."""
        session = self.broker_sessions[broker_id]
        if epoch is None:
            epoch = self.nodes[r.broker_path(broker_id)].czxid
        data = r.encode(r.ControlledShutdownRequest(broker_epoch=epoch))
        path = r.controlled_shutdown_path(broker_id)
        op: TreeOp = SetDataOp(path, data) if path in self.nodes else CreateOp(path, data, True)
        self.apply([op], session)

    def activate(self, controller_id: int = 0, timestamp_ms: int = 0) -> int:
        session = self.new_session()
        result = become_active(self.image, controller_id, timestamp_ms)
        self.apply(result.ops, session)
        assert isinstance(result.reply, int)
        return result.reply

    def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        config: Mapping[str, str] | None = None,
        seed: int = 0,
    ) -> ControllerResult:
        result = create_topic(
            self.image,
            name,
            partitions,
            replication_factor,
            dict(config or {}),
            random.Random(seed),
            f"id-{name}-{self.zxid}",
        )
        self.run(result)
        return result


def _apply_one(nodes: dict[str, ZnodeView], op: TreeOp, zxid: int, session: int) -> str | None:
    path = op.path
    node = nodes.get(path)
    if isinstance(op, CreateOp):
        if node is not None:
            return "NODEEXISTS"
        parent = _parent(path)
        if parent != "/" and parent not in nodes:
            return "NONODE (parent)"
        if parent != "/" and nodes[parent].ephemeral_owner:
            return "NOCHILDRENFOREPHEMERALS"
        owner = session if op.ephemeral else 0
        nodes[path] = ZnodeView(op.data, 0, zxid, zxid, owner)
        return None
    if node is None:
        return "NONODE"
    if op.version not in (-1, node.version):
        return f"BADVERSION (expected {op.version}, is {node.version})"
    if isinstance(op, SetDataOp):
        nodes[path] = ZnodeView(op.data, node.version + 1, node.czxid, zxid, node.ephemeral_owner)
    elif isinstance(op, DeleteOp):
        if any(p.startswith(path + "/") for p in nodes):
            return "NOTEMPTY"
        del nodes[path]
    else:
        assert isinstance(op, CheckOp)
    return None


# ---------------------------------------------------------------- scenario helpers

SETTINGS = ControllerSettings()


def settle(tree: SimTree, settings: ControllerSettings = SETTINGS) -> ControllerResult:
    """Reconcile, apply, and check that the image is then consistent."""
    result = reconcile(tree.image, settings)
    tree.run(result)
    assert reconcile(tree.image, settings).ops == ()
    assert tree.image == tree.rebuilt_image()
    return result


def cluster(brokers: int = 3) -> SimTree:
    tree = SimTree()
    tree.activate(controller_id=0)
    for broker_id in range(1, brokers + 1):
        tree.register_broker(broker_id)
    return tree


def with_topic(
    replicas: dict[int, list[int]], config: dict[str, str] | None = None, brokers: int = 3
) -> SimTree:
    """A settled cluster with topic 't' assigned exactly as given."""
    tree = cluster(brokers)
    assignment = r.TopicAssignment(partitions={str(p): b for p, b in replicas.items()})
    ops = [CreateOp(r.topic_path("t"), r.encode(assignment))]
    if config is not None:
        ops.insert(0, CreateOp(r.topic_config_path("t"), r.encode(r.TopicConfig(config))))
    tree.apply(ops)
    settle(tree)
    return tree


def part(tree: SimTree, partition: int = 0, topic: str = "t") -> PartitionImage:
    return tree.image.topics[topic].partitions[partition]
