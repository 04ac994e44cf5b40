"""Turns inline: a lone client's write is stepped, fsynced, replicated, committed and
answered by the tasks that read each hop's bytes, without a task switch to the Raft loop;
what has to wait for storage (a large append) is handed to the loop, and still applies
everywhere. Three controllers in this process, real TCP and real fsync."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from controller.client.client import open_client
from controller.localquorum import free_ports
from controller.node.config import Address, NodeConfig
from controller.node.main import build_node
from controller.node.server import INLINE_PERSIST_MAX_BYTES, ControllerNode

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
            # worker thread's fsync in the Raft loop, not in the task that read them.
            for i, node in nodes.items():
                assert node.loop_turns - loop_before[i] >= 2, (i, node.status())
