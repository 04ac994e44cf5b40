"""Process entry point for one controller (`kraft controller run`)."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys

import trio

from controller.node.config import NodeConfig
from controller.node.server import ControllerNode
from controller.storage import StorageError

log = logging.getLogger(__name__)

GRACEFUL_TRANSFER_S = 1.0


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
        stream=sys.stderr,
    )


def build_node(config: NodeConfig) -> ControllerNode:
    """A controller node running the coordination service (and the admin KV machine)."""
    from controller.coord.machine import CoordStateMachine
    from controller.node.statemachine import ControllerStateMachine
    from controller.service.broker_controller import BrokerController, BrokerControllerSettings
    from controller.service.zk_service import ZkService, ZkSettings

    coord = CoordStateMachine()
    node = ControllerNode(config, ControllerStateMachine(coord))
    settings = ZkSettings(
        tick_time_ms=config.tick_time_ms,
        max_client_cnxns=config.max_client_cnxns,
        max_outstanding=config.max_outstanding_requests,
        global_outstanding_limit=config.global_outstanding_limit,
        max_watches_per_session=config.max_watches_per_session,
        jute_max_buffer=config.jute_max_buffer,
        four_letter_whitelist=config.four_letter_word_whitelist,
        super_digest=config.super_digest,
        extended_types_enabled=config.extended_types_enabled,
    )
    service = ZkService(node, coord, settings)
    broker_controller = BrokerController(
        node,
        service,
        coord,
        BrokerControllerSettings(
            leader_imbalance_check_interval_seconds=config.leader_imbalance_check_interval_seconds,
            leader_imbalance_per_broker_percentage=config.leader_imbalance_per_broker_percentage,
            auto_leader_rebalance_enable=config.auto_leader_rebalance_enable,
        ),
    )
    node.service = service
    # The service first: a write's completion and the image it produced are then both
    # visible before the writer resumes.
    node.listeners = [service, broker_controller]
    node.components = [broker_controller.run]
    node.status_sources["broker_controller"] = broker_controller.stats
    from controller.observe.setup import install_observability

    install_observability(node, service, broker_controller)  # after the broker controller
    return node


async def run_until_signalled(config: NodeConfig) -> None:
    node = build_node(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        # Everything built so far (modules, the recovered state) lives as long as the
        # process: freeze it so full collections under load walk only what came later (the
        # first ones otherwise took 200+ ms on a busy 2-core machine; see gc_pauses.py).
        gc.collect()
        gc.freeze()
        print(f"controller {config.node_id} serving clients on {node.client_address}", flush=True)
        if "admin" in node.status_sources:
            url = node.status_sources["admin"]()["url"]
            print(f"admin server (console, /metrics) on {url}", flush=True)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                break
        # Like KRaft's EndQuorumEpoch: resign gracefully so the quorum does not wait for an
        # election timeout.
        if node.core.is_leader and len(config.voters) > 1:
            node.transfer_leadership()
            with trio.move_on_after(GRACEFUL_TRANSFER_S):
                while node.core.is_leader:
                    await node.applied_event.wait()
        nursery.cancel_scope.cancel()


def run_controller(config: NodeConfig) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    from controller.node.gc_pauses import GcPauseGuard

    GcPauseGuard().install()  # this process only: a full collection must not stall Raft
    exit_with_parent()
    try:
        trio.run(run_until_signalled, config)
    except (StorageError, OSError, BaseExceptionGroup) as exc:
        leaf = first_leaf(exc)
        if not isinstance(leaf, StorageError | OSError):
            raise
        detail = str(leaf) if isinstance(leaf, StorageError) else (leaf.strerror or str(leaf))
        print(f"error: controller {config.node_id}: {detail}", file=sys.stderr)
        return 2
    return 0


def exit_with_parent() -> None:
    """When started by `kraft quorum start` (KRAFT_EXIT_WITH_PARENT names its pid), ask
    Linux (prctl PR_SET_PDEATHSIG) for SIGTERM when the supervisor dies, so killing it with
    SIGKILL still stops its controllers gracefully instead of orphaning them."""
    parent = os.environ.get("KRAFT_EXIT_WITH_PARENT")
    if not parent or not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        return
    if os.getppid() != int(parent):  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def first_leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
