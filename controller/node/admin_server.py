"""Server side of the admin protocol (see `controller.node.admin`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from controller.node.admin import (
    AdminDecoder,
    AdminProtocolError,
    AdminRequest,
    AdminResponse,
    encode,
)
from controller.node.statemachine import KVCommand, KVStateMachine, encode_kv
from controller.raft.types import Entry

if TYPE_CHECKING:
    from controller.node.server import ControllerNode

log = logging.getLogger(__name__)

MAX_OUTSTANDING = 4096  # per connection; the reader stops reading beyond this


async def serve_admin(node: ControllerNode, stream: trio.SocketStream) -> None:
    """Answer pipelined admin requests until the client closes the connection."""
    out: list[bytes] = []
    wake = trio.Event()
    # Outstanding-request bound without a checkpoint per request (a Semaphore would yield).
    outstanding = 0
    room = trio.Event()
    closed = False

    def reply(resp: AdminResponse) -> None:
        nonlocal outstanding, room
        out.append(encode(resp))
        outstanding -= 1
        room.set()
        wake.set()

    async def writer() -> None:
        nonlocal wake
        while True:
            while not out:
                wake = trio.Event()
                await wake.wait()
            batch = b"".join(out)
            out.clear()
            await stream.send_all(batch)

    def on_applied(req: AdminRequest) -> object:
        def callback(result: object, entry: Entry | None, error: Exception | None) -> None:
            if closed:
                return
            if error is not None:
                leader = getattr(error, "leader", "")
                reply(AdminResponse(req.id, False, error=str(error), leader=leader))
            else:
                assert entry is not None
                value = result if isinstance(result, bytes) else None
                reply(AdminResponse(req.id, True, value=value, index=entry.index))

        return callback

    decoder = AdminDecoder(AdminRequest)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            async for data in stream:
                decoder.feed(bytes(data))
                while (req := decoder.next()) is not None:
                    assert isinstance(req, AdminRequest)
                    while outstanding >= MAX_OUTSTANDING:
                        room = trio.Event()
                        await room.wait()
                    outstanding += 1
                    if req.op == "status":
                        reply(AdminResponse(req.id, True, status=node.status()))
                    elif req.op == "get":
                        value = None
                        kv = node.sm if isinstance(node.sm, KVStateMachine) else None
                        kv = kv or getattr(node.sm, "kv", None)
                        if isinstance(kv, KVStateMachine):
                            value = kv.data.get(req.key)
                        reply(
                            AdminResponse(req.id, True, value=value, index=node.core.applied_index)
                        )
                    elif req.op in ("put", "propose"):
                        command = (
                            encode_kv(KVCommand("put", req.key, req.value))
                            if req.op == "put"
                            else req.value
                        )
                        await node.wait_for_room()
                        node.submit(command, on_applied(req))  # type: ignore[arg-type]
                    elif req.op == "transfer":
                        node.transfer_leadership()
                        reply(AdminResponse(req.id, True))
                    else:
                        reply(AdminResponse(req.id, False, error=f"unknown op {req.op!r}"))
            nursery.cancel_scope.cancel()
    except AdminProtocolError as exc:
        log.warning("closing admin connection: %s", exc)
    finally:
        closed = True
