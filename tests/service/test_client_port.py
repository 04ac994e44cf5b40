"""The client port over in-memory streams (no socket): one in-process controller, the
ZooKeeper protocol driven byte for byte, and the global outstanding limit at work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from controller.localquorum import free_ports
from controller.node.config import Address, NodeConfig
from controller.node.main import build_node
from controller.node.server import ControllerNode
from controller.service.zk_service import ZkService
from controller.zk.constants import Err, OpCode
from controller.zk.protocol import (
    ClientFramer,
    ConnectedEvent,
    ReplyEvent,
    decode_response,
    encode_connect_request,
    encode_request,
)
from controller.zk.records import (
    ACL,
    ConnectRequest,
    CreateRequest,
    GetDataRequest,
    Id,
    SetDataRequest,
)

OPEN = [ACL(31, Id("world", "anyone"))]


class MemoryClient:
    """A raw ZooKeeper client on one end of a memory stream pair."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.framer = ClientFramer()
        self.xid = 0

    async def event(self) -> ConnectedEvent | ReplyEvent:
        while True:
            event = self.framer.next_event()
            if event is not None:
                return event
            data = await self.stream.receive_some(65536)
            assert data, "connection closed"
            self.framer.feed(bytes(data))

    async def connect(self) -> int:
        await self.stream.send_all(
            encode_connect_request(ConnectRequest(0, 0, 10_000, 0, b"\0" * 16, False))
        )
        event = await self.event()
        assert isinstance(event, ConnectedEvent)
        return event.response.session_id

    async def send(self, op: int, record: object) -> int:
        self.xid += 1
        await self.stream.send_all(encode_request(self.xid, op, record))
        return self.xid

    async def send_many(self, requests: list[tuple[int, object]]) -> list[int]:
        """All requests in one write, so the server finds them all at once."""
        first = self.xid + 1
        self.xid += len(requests)
        frames = [encode_request(first + i, op, rec) for i, (op, rec) in enumerate(requests)]
        await self.stream.send_all(b"".join(frames))
        return list(range(first, self.xid + 1))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ControllerNode, ZkService]]:
    client, raft = free_ports(2)
    config = NodeConfig(
        node_id=1,
        voters={1: Address("127.0.0.1", raft)},
        data_dir=tmp_path / "node",
        client_port=client,
        fsync=False,
        admin_port=-1,
        global_outstanding_limit=8,
    )
    node = build_node(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        with trio.fail_after(10):
            while not node.core.is_leader:
                await node.applied_event.wait()
        assert isinstance(node.service, ZkService)
        yield node, node.service
        nursery.cancel_scope.cancel()


async def open_client(service: ZkService, nursery: trio.Nursery) -> MemoryClient:
    ours, theirs = trio.testing.memory_stream_pair()
    nursery.start_soon(service.handle_client, theirs, b"", "memory")
    client = MemoryClient(ours)
    assert await client.connect()
    return client


async def test_pipelined_requests_are_answered_in_order_past_the_global_limit(
    served: tuple[ControllerNode, ZkService],
) -> None:
    """200 pipelined requests against a limit of 8: the port stops reading at the limit
    (throttled), every request is answered, in request order, and reads see earlier writes
    of the same session."""
    _, service = served
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            client = await open_client(service, nursery)
            requests: list[tuple[int, object]] = [
                (OpCode.CREATE, CreateRequest("/n", b"0", OPEN, 0))
            ]
            for i in range(1, 100):
                requests.append((OpCode.SET_DATA, SetDataRequest("/n", b"%d" % i, -1)))
                requests.append((OpCode.GET_DATA, GetDataRequest("/n", False)))
            xids = await client.send_many(requests)
            replies = [await client.event() for _ in xids]
            assert [r.header.xid for r in replies if isinstance(r, ReplyEvent)] == xids
            assert all(isinstance(r, ReplyEvent) and r.header.err == 0 for r in replies)
            last = replies[-1]
            assert isinstance(last, ReplyEvent)
            assert decode_response(OpCode.GET_DATA, last.body).data == b"99"
            assert service.limit.throttled > 0
            assert service.limit.count == 0
            nursery.cancel_scope.cancel()


async def test_a_bad_request_fails_only_that_request(
    served: tuple[ControllerNode, ZkService],
) -> None:
    _, service = served
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            client = await open_client(service, nursery)
            other = await open_client(service, nursery)
            bad = await client.send(OpCode.CREATE, CreateRequest("no-slash", b"", OPEN, 0))
            reply = await client.event()
            assert isinstance(reply, ReplyEvent)
            assert (reply.header.xid, reply.header.err) == (bad, Err.BADARGUMENTS)
            good = await other.send(OpCode.CREATE, CreateRequest("/ok", b"", OPEN, 0))
            reply = await other.event()
            assert isinstance(reply, ReplyEvent) and (reply.header.xid, reply.header.err) == (
                good,
                0,
            )
            nursery.cancel_scope.cancel()


async def test_a_connection_closed_while_waiting_for_its_turn_gives_back_its_room(
    served: tuple[ControllerNode, ZkService],
) -> None:
    """A connection the server closes (e.g. its write failed with connection loss) while
    its reader waits for a turn under the outstanding limit must release what it held, or
    the limit stays full and no client of this controller is read again."""
    node, service = served
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            flooder = await open_client(service, nursery)
            # A one-controller quorum commits a write within the turn that proposes it:
            # hold proposals back so that handed-over writes stay in flight.
            node._propose_pending = lambda: None  # type: ignore[method-assign]
            requests: list[tuple[int, object]] = [
                (OpCode.CREATE, CreateRequest("/f", b"", OPEN, 0))
            ]
            requests += [(OpCode.SET_DATA, SetDataRequest("/f", b"x", -1))] * 300
            await flooder.send_many(requests)
            while service.limit.throttled == 0 or not service.forwarder._sent:
                await trio.sleep(0)
            [conn] = [c for c in service.connections.values() if c.turn_scope is not None]
            # As when the leader changes: every write it handed over fails with connection
            # loss, so they will never be answered, and the server closes the connection.
            service.forwarder.leader_changed(None)
            assert conn.closing
            del node._propose_pending  # the held-back writes go to the log now
            while service.limit.count:
                await trio.sleep(0.01)
            other = await open_client(service, nursery)
            xid = await other.send(OpCode.CREATE, CreateRequest("/after", b"", OPEN, 0))
            reply = await other.event()
            assert isinstance(reply, ReplyEvent) and (reply.header.xid, reply.header.err) == (
                xid,
                0,
            )
            nursery.cancel_scope.cancel()
