"""The admin server lives in the node's nursery: up with the node, gone when it is cancelled,
even with an event stream open."""

from __future__ import annotations

from pathlib import Path

import trio

from controller.localquorum import free_ports
from controller.node.config import Address, NodeConfig
from controller.node.main import build_node


async def http_get(
    port: int, path: str, *, stream: bool = False
) -> tuple[trio.SocketStream, bytes]:
    sock = await trio.open_tcp_stream("127.0.0.1", port)
    await sock.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or (stream and b"event: hello" not in data):
        chunk = await sock.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return sock, data


async def test_admin_server_is_cancelled_with_the_node(tmp_path: Path) -> None:
    client, raft = free_ports(2)
    config = NodeConfig(
        node_id=1,
        voters={1: Address("127.0.0.1", raft)},
        data_dir=tmp_path / "node",
        client_port=client,
        fsync=False,
        admin_port=0,
    )
    node = build_node(config)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            port = node.status()["admin"]["port"]
            assert port > 0
            while node.core.leader_id is None:
                await node.applied_event.wait()
            _, head = await http_get(port, "/readyz")
            assert head.startswith(b"HTTP/1.1 200"), head
            events, head = await http_get(port, "/api/events", stream=True)
            assert b"text/event-stream" in head and b"event: hello" in head
            nursery.cancel_scope.cancel()
        await events.aclose()
    try:
        await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        pass
    else:
        raise AssertionError("the admin port still accepts connections")
