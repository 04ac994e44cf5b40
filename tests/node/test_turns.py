"""Turns inline: a lone client's write is stepped, fsynced, replicated, committed and
answered by the tasks that read each hop's bytes, without a task switch to the Raft loop;
what has to wait for storage (a large append) is handed to the loop, and still applies
everywhere. Three controllers in this process, real TCP and real fsync."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from controller.client.client import open_client
from controller.localquorum import free_ports
from controller.node.config import Address, NodeConfig
from controller.node.main import build_node
from controller.node.server import (
    INLINE_PERSIST_MAX_BYTES,
    SLOW_DISK_HOLD_S,
    SLOW_FSYNC_S,
    ControllerNode,
)

WRITES = 100


@contextlib.asynccontextmanager
async def quorum(tmp_path: Path) -> AsyncIterator[dict[int, ControllerNode]]:
    ports = free_ports(6)
    voters = {i: Address("127.0.0.1", ports[2 + i]) for i in (1, 2, 3)}
    nodes = {
        i: build_node(
            NodeConfig(
                node_id=i,
                voters=voters,
                data_dir=tmp_path / f"node-{i}",
                client_port=ports[i - 1],
                fsync=True,
            )
        )
        for i in (1, 2, 3)
    }
    async with trio.open_nursery() as nursery:
        for node in nodes.values():
            await nursery.start(node.run)
        while not any(n.core.is_leader for n in nodes.values()) or any(
            n.core.leader_id is None for n in nodes.values()
        ):
            await trio.sleep(0.05)
        yield nodes
        nursery.cancel_scope.cancel()


def a_follower(nodes: dict[int, ControllerNode]) -> ControllerNode:
    return next(n for n in nodes.values() if not n.core.is_leader)


async def test_a_lone_clients_writes_never_wait_for_the_raft_loop(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with quorum(tmp_path) as nodes:
            follower = a_follower(nodes)
            async with open_client(follower.client_address) as zk:
                await zk.create("/p", b"0")
                loop_before = {i: n.loop_turns for i, n in nodes.items()}
                inline_before = {i: n.inline_turns for i, n in nodes.items()}
                for k in range(1, WRITES + 1):
                    await zk.set("/p", b"%d" % k)
                value, stat = await zk.get("/p")
            assert value == b"%d" % WRITES and stat.version == WRITES
            for i, node in nodes.items():
                # Each write is one or more inline turns on every controller (append,
                # ack, commit); the Raft loop ran only for what is not a write (at most a
                # handful of hand-offs, if any). Before, each write took 2-3 loop turns.
                assert node.inline_turns - inline_before[i] >= WRITES, (i, node.status())
                assert node.loop_turns - loop_before[i] < WRITES // 10, (i, node.status())


async def test_a_large_append_is_handed_to_the_raft_loop_and_applies_everywhere(
    tmp_path: Path,
) -> None:
    big = bytes(range(256)) * (2 * INLINE_PERSIST_MAX_BYTES // 256)
    with trio.fail_after(60):
        async with quorum(tmp_path) as nodes:
            follower = a_follower(nodes)
            loop_before = {i: n.loop_turns for i, n in nodes.items()}
            async with open_client(follower.client_address) as zk:
                await zk.create("/big", big)
                await zk.set("/big", big[::-1])
                await zk.create("/small", b"after")
            for node in nodes.values():
                async with open_client(node.client_address) as zk:
                    await zk.sync("/")
                    assert (await zk.get("/big"))[0] == big[::-1]
                    assert (await zk.get("/small"))[0] == b"after"
            # The leader's and the followers' appends of the large entries waited for a
            # worker thread's fsync in the Raft loop, not in the task that read them (both
            # large entries may come in one append).
            for i, node in nodes.items():
                assert node.loop_turns - loop_before[i] >= 1, (i, node.status())


async def test_after_a_slow_fsync_appends_are_fsynced_in_a_worker_thread_for_a_while(
    tmp_path: Path,
) -> None:
    """A busy disk can make an fsync take hundreds of milliseconds (ext4 flushes other
    files' data first); the event loop must not stop that long again: after one fsync over
    SLOW_FSYNC_S, appends go to the Raft loop's worker thread for SLOW_DISK_HOLD_S."""
    client, raft = free_ports(2)
    node = build_node(
        NodeConfig(
            node_id=1,
            voters={1: Address("127.0.0.1", raft)},
            data_dir=tmp_path / "node",
            client_port=client,
            fsync=True,
        )
    )
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            while not node.core.is_leader:
                await node.applied_event.wait()
            async with open_client(node.client_address) as zk:
                await zk.create("/p", b"")
                storage = node._storage
                assert storage is not None
                fast_sync = storage.sync

                def slow_sync() -> None:
                    time.sleep(SLOW_FSYNC_S * 2)
                    fast_sync()

                storage.sync = slow_sync  # type: ignore[method-assign]
                await zk.set("/p", b"slow")
                storage.sync = fast_sync  # type: ignore[method-assign]
                before = node.loop_turns
                for k in range(10):
                    await zk.set("/p", b"%d" % k)
                assert node.loop_turns - before >= 10  # each append went to the thread
                await trio.sleep(SLOW_DISK_HOLD_S)
                before = node.loop_turns
                for k in range(10):
                    await zk.set("/p", b"%d" % k)
                assert node.loop_turns - before < 3  # in place again
            nursery.cancel_scope.cancel()
