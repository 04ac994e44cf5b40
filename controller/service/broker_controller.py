"""`BrokerController`: the trio shell of the broker metadata controller.

Every controller keeps a `MetadataImage` current from the log (a `RaftListener`: the znodes
each applied entry touched are replayed into a `MetadataDelta`), so a standby that becomes
leader needs no reload. On the Raft leader, once it has applied the first entry of its term
(its state is then complete), the controller becomes *active* (KRaft: the active controller
is the quorum leader):

1. it opens its own coordination session and, in one multi, bumps `/controller_epoch`
   (conditional on the version it read) and writes the ephemeral `/controller`;
2. it loops: `reconcile(image)` returns the tree operations the image needs (partition
   states of new topics, elections after broker deaths, ISR joins, deletions, controlled
   shutdowns, preferred elections); each batch of at most 10,000 ops is proposed as one
   multi that starts with a version check of `/controller_epoch`, so a deposed controller's
   write can never land (Kafka's KAFKA-6082 fencing). It then waits for the next change.

On losing leadership the active scope is cancelled at once: nothing more is proposed.
Decisions are the pure functions of `controller.metadata.decisions`; this module only moves
data between them and the coordination service.
"""

from __future__ import annotations

import enum
import logging
import time
from typing import TYPE_CHECKING, Any

import attrs
import trio

from controller.coord.commands import Applied
from controller.coord.datatree import Znode
from controller.metadata import records as r
from controller.metadata.decisions import (
    ControllerSettings,
    become_active,
    offline_partitions,
    rebalance_preferred,
    reconcile,
)
from controller.metadata.image import (
    EMPTY_IMAGE,
    MetadataDelta,
    MetadataImage,
    ZnodeView,
    image_from_nodes,
    is_metadata_path,
)
from controller.metadata.ops import (
    CONTROLLER_OPS_PER_MULTI,
    CheckOp,
    ControllerResult,
    TreeOp,
    batches,
)
from controller.metadata.zkops import multi_request
from controller.node.listeners import CommittedBatch, LeaderChange
from controller.raft.types import LogIndex
from controller.service.zk_service import ServiceWriteError
from controller.zk.constants import Err, OpCode
from controller.zk.records import MultiResponse

if TYPE_CHECKING:
    from controller.coord.machine import CoordStateMachine
    from controller.node.server import ControllerNode
    from controller.service.zk_service import ZkService

log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 10_000
TOUCH_INTERVAL_S = 0.5
RETRY_S = 0.05


@attrs.frozen
class BrokerControllerSettings:
    """Settings of the broker controller (Kafka's names, with dots as underscores)."""

    leader_imbalance_check_interval_seconds: float = 300.0
    leader_imbalance_per_broker_percentage: int = 10
    auto_leader_rebalance_enable: bool = True

    def decisions(self) -> ControllerSettings:
        return ControllerSettings(
            leader_imbalance_per_broker_percentage=self.leader_imbalance_per_broker_percentage,
            auto_leader_rebalance_enable=self.auto_leader_rebalance_enable,
        )


class _Outcome(enum.Enum):
    APPLIED = "applied"
    CONFLICT = "conflict"  # a conditional op failed: recompute from the newer image
    FENCED = "fenced"  # /controller_epoch moved: another controller is active
    LOST = "lost"  # outcome unknown (leadership changed)


def znode_view(node: Znode | None) -> ZnodeView | None:
    if node is None:
        return None
    return ZnodeView(node.data or b"", node.version, node.czxid, node.mzxid, node.ephemeral_owner)


class BrokerController:
    """Keeps the metadata image current everywhere; acts on the Raft leader only."""

    def __init__(
        self,
        node: ControllerNode,
        service: ZkService,
        machine: CoordStateMachine,
        settings: BrokerControllerSettings | None = None,
    ) -> None:
        self.node = node
        self.service = service
        self.machine = machine
        self.settings = settings or BrokerControllerSettings()
        self.image: MetadataImage = EMPTY_IMAGE
        self._leader: LeaderChange | None = None
        self._caught_up = False
        self._wake = trio.Event()
        self._active_scope: trio.CancelScope | None = None
        self.active_epoch = 0  # the controller epoch while active, else 0
        self.session_id = 0
        self.activations = 0
        self.partition_changes = 0
        self.last_batch_ms = 0.0
        self.last_activation_ms = 0.0  # leader change -> first reconcile applied
        self._offline: tuple[MetadataImage, int] | None = None  # stats cache: (image, count)

    # ------------------------------------------------------------------ RaftListener

    def handle_commit(self, batch: CommittedBatch) -> None:
        if not batch:
            return
        delta: MetadataDelta | None = None
        tree = self.machine.tree
        for _entry, result in batch:
            if type(result) is not Applied or not result.events:
                continue
            for _event, path in result.events:
                if is_metadata_path(path):
                    if delta is None:
                        delta = MetadataDelta(self.image)
                    delta.replay(path, znode_view(tree.find(path)))
        last = batch[-1][0]
        if delta is not None:
            self.image = delta.apply(last.zxid)
            self._wake.set()
        leader = self._leader
        caught_up = leader is not None and leader.is_leader and last.index >= leader.complete_from
        if caught_up and not self._caught_up:
            self._caught_up = True
            self._wake.set()

    def handle_snapshot(self, index: LogIndex, zxid: int) -> None:
        tree = self.machine.tree
        self.image = image_from_nodes(
            (
                (path, view)
                for path, node in tree.nodes.items()
                if is_metadata_path(path) and (view := znode_view(node)) is not None
            ),
            zxid,
        )
        self._wake.set()

    def handle_leader_change(self, change: LeaderChange) -> None:
        previous = self._leader
        self._leader = change
        deposed = not change.is_leader or (previous is not None and previous.term != change.term)
        if deposed and self._active_scope is not None:
            self._active_scope.cancel()  # stop acting at once
        self._caught_up = change.is_leader and self._applied_index() >= change.complete_from
        self._wake.set()

    def _applied_index(self) -> int:
        return self.node.core.applied_index if self.node._core is not None else 0

    # ------------------------------------------------------------------ status

    @property
    def is_active(self) -> bool:
        return self.active_epoch > 0

    def stats(self) -> dict[str, Any]:
        image = self.image
        return {
            "active": self.is_active,
            "controller_epoch": image.controller_epoch,
            "active_controller": image.controller.brokerid if image.controller else None,
            "brokers": len(image.brokers),
            "topics": len(image.topics),
            "partitions": image.partition_count(),
            "offline_partitions": self._offline_count(image),
            "image_zxid": image.zxid,
            "activations": self.activations,
            "partition_changes": self.partition_changes,
            "last_batch_ms": round(self.last_batch_ms, 1),
            "last_activation_ms": round(self.last_activation_ms, 1),
        }

    def _offline_count(self, image: MetadataImage) -> int:
        """`len(offline_partitions(image))`, computed once per image (an O(partitions) scan,
        which status polling would otherwise repeat on the event loop)."""
        cached = self._offline
        if cached is None or cached[0] is not image:
            cached = self._offline = (image, len(offline_partitions(image)))
        return cached[1]

    # ------------------------------------------------------------------ run

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            leader = self._leader
            if leader is None or not leader.is_leader or not self._caught_up:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            started = trio.current_time()
            with trio.CancelScope() as scope:
                self._active_scope = scope
                try:
                    await self._run_active(leader, started)
                finally:
                    self._active_scope = None
                    self.active_epoch = 0
                    self.session_id = 0
            if scope.cancelled_caught:
                log.info("controller %d: no longer active (leadership lost)", self.node.node_id)
            # Fenced or leadership lost: wait for the next leader change.
            while self._leader is leader:
                self._wake = trio.Event()
                await self._wake.wait()

    async def _run_active(self, leader: LeaderChange, started: float) -> None:
        async with trio.open_nursery() as nursery:
            session = await self._open_session()
            self.session_id = session
            nursery.start_soon(self._keep_alive, session)
            epoch = await self._become_active(session)
            if epoch is None:
                nursery.cancel_scope.cancel()
                return
            self.activations += 1
            self.active_epoch = epoch
            log.warning(
                "controller %d is the active controller at controller epoch %d (term %d)",
                self.node.node_id,
                epoch,
                leader.term,
            )
            await self._control_loop(session, started)
            nursery.cancel_scope.cancel()

    async def _open_session(self) -> int:
        """Open the controller's own session, retrying while this controller stays leader
        (a leadership change cancels the active scope, and so this loop)."""
        while True:
            try:
                return await self.service.open_session(SESSION_TIMEOUT_MS)
            except ServiceWriteError as exc:
                log.warning("controller %d: %s; retrying", self.node.node_id, exc)
                await trio.sleep(RETRY_S)

    async def _keep_alive(self, session: int) -> None:
        while True:
            self.service.touch(session)
            await trio.sleep(TOUCH_INTERVAL_S)

    async def _become_active(self, session: int) -> int | None:
        while True:
            result = become_active(self.image, self.node.node_id, _now_ms())
            outcome = await self._write(session, list(result.ops))
            if outcome is _Outcome.APPLIED:
                epoch = result.reply
                assert isinstance(epoch, int)
                # Our listener ran in the same apply batch as the service's completion.
                assert self.image.controller_epoch == epoch, (self.image.controller_epoch, epoch)
                return epoch
            await trio.sleep(RETRY_S)

    async def _control_loop(self, session: int, started: float) -> None:
        settings = self.settings.decisions()
        interval = self.settings.leader_imbalance_check_interval_seconds
        fence = self.image.controller_epoch_version
        next_rebalance = trio.current_time() + interval
        first = True
        consistent: MetadataImage | None = None  # the last image reconcile had nothing for
        while True:
            self._wake = trio.Event()
            image = self.image
            rebalance = trio.current_time() >= next_rebalance
            if rebalance:
                next_rebalance = trio.current_time() + interval
            # Decisions are pure functions of an immutable image, so they run in a worker
            # thread: after a broker death at 100,000 partitions they take hundreds of
            # milliseconds, which on this thread would stall the Raft loop's heartbeats.
            result = await trio.to_thread.run_sync(_decide, image, settings, consistent, rebalance)
            if not result.ops:
                consistent = image
            if result.ops:
                outcome = await self._apply(session, fence, result)
                if outcome is _Outcome.FENCED:
                    log.warning(
                        "controller %d: /controller_epoch moved on; resigning as active",
                        self.node.node_id,
                    )
                    return
                if outcome is not _Outcome.APPLIED:
                    await trio.sleep(RETRY_S)
                continue
            if first:
                first = False
                self.last_activation_ms = (trio.current_time() - started) * 1000
            with trio.move_on_at(next_rebalance):
                await self._wake.wait()

    async def _apply(self, session: int, fence: int, result: ControllerResult) -> _Outcome:
        began = time.perf_counter()
        for batch in batches(result.ops, CONTROLLER_OPS_PER_MULTI):
            outcome = await self._write(session, [CheckOp(r.CONTROLLER_EPOCH, fence), *batch])
            if outcome is not _Outcome.APPLIED:
                return outcome
        self.last_batch_ms = (time.perf_counter() - began) * 1000
        for message in result.messages:
            log.info("%s", message)
        self.partition_changes += len(result.messages)
        return _Outcome.APPLIED

    async def _write(self, session: int, ops: list[TreeOp]) -> _Outcome:
        applied = await self.service.write(session, int(OpCode.MULTI), multi_request(ops))
        if applied.err:
            if applied.err == Err.CONNECTIONLOSS:
                return _Outcome.LOST
            log.warning("controller write failed: %s", _err_name(applied.err))
            return _Outcome.CONFLICT
        response = applied.response
        assert isinstance(response, MultiResponse)
        for i, (kind, err, _) in enumerate(response.results):
            if kind == -1 and err not in (0, Err.RUNTIMEINCONSISTENCY):
                op = ops[i]
                if i == 0 and isinstance(op, CheckOp) and op.path == r.CONTROLLER_EPOCH:
                    return _Outcome.FENCED
                log.warning(
                    "controller multi failed at %s %s: %s",
                    type(op).__name__,
                    op.path,
                    _err_name(err),
                )
                return _Outcome.CONFLICT
        return _Outcome.APPLIED


def _decide(
    image: MetadataImage,
    settings: ControllerSettings,
    consistent: MetadataImage | None,
    rebalance: bool,
) -> ControllerResult:
    """`reconcile`, plus the preferred-leader rebalance when it is due (worker thread)."""
    result = reconcile(image, settings, since=consistent)
    if rebalance:
        result = result + rebalance_preferred(image, settings)
    return result


def _err_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return str(code)


def _now_ms() -> int:
    return int(time.time() * 1000)
