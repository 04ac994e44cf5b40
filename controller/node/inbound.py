"""Inbound connections of a controller: peers on the Raft port, clients on the client port.

A peer connection carries frames (`controller/node/codec.py`): the peer's `Hello` first,
then Raft messages and service frames (forwarded writes and their failures, session
touches). Each chunk read is handled as a whole: its service frames go to the service, and
its Raft messages are stepped in a turn right here when the Raft loop is idle
(`ControllerNode.try_turn`), so a hop of a write costs no task switch; otherwise they are
queued for the loop. Writes the service submits while reading the chunk join that turn
(`ControllerNode.batch`).

A client connection's first four bytes say what it is: the `krft` admin protocol, or the
ZooKeeper protocol (a ConnectRequest's length, or a four-letter word).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from controller.node.admin import MAGIC
from controller.node.codec import (
    SERVICE_FRAME_TYPES,
    FrameDecoder,
    Hello,
    PeerProtocolError,
)
from controller.raft.messages import Message

if TYPE_CHECKING:
    from controller.node.server import ControllerNode

log = logging.getLogger(__name__)

FIRST_BYTES_TIMEOUT_S = 10.0


async def serve_peer(node: ControllerNode, stream: trio.SocketStream) -> None:
    """Read one peer's connection until it closes or breaks the protocol (then it is
    closed with one log line; the peer reconnects)."""
    decoder = FrameDecoder()
    peer: Hello | None = None
    try:
        async for data in stream:
            decoder.feed(bytes(data))
            messages: list[Message] = []
            with node.batch():
                peer = read_peer_frames(node, decoder, peer, messages)
                if node.try_turn(messages):
                    continue
            await node.queue_messages(messages)
    except PeerProtocolError as exc:
        log.error("closing peer connection: %s", exc)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


def read_peer_frames(
    node: ControllerNode, decoder: FrameDecoder, peer: Hello | None, messages: list[Message]
) -> Hello | None:
    """Handle the service frames of one chunk and collect its Raft messages (in order);
    returns the peer's Hello once known. Raises PeerProtocolError."""
    while (frame := decoder.next_frame()) is not None:
        if peer is None:
            peer = check_hello(node, frame)
            node.peer_said_hello(peer)
            continue
        if isinstance(frame, Hello):
            raise PeerProtocolError(f"unexpected {type(frame).__name__}")
        if isinstance(frame, SERVICE_FRAME_TYPES):
            if node.service is not None:
                node.service.on_peer_frame(peer.node_id, frame)
            continue
        if frame.src != peer.node_id or frame.dst != node.node_id:
            raise PeerProtocolError(
                f"message {frame.src}->{frame.dst} on node {peer.node_id}'s link"
            )
        messages.append(frame)
    return peer


def check_hello(node: ControllerNode, frame: object) -> Hello:
    """The first frame of a peer connection: a Hello of this cluster from another member."""
    if not isinstance(frame, Hello):
        raise PeerProtocolError("first frame must be Hello")
    if frame.cluster_id != node.config.cluster_id:
        raise PeerProtocolError(f"foreign cluster id {frame.cluster_id!r}")
    members = {**node.config.voters, **node.config.observers}
    if frame.node_id not in members or frame.node_id == node.node_id:
        raise PeerProtocolError(f"unknown node id {frame.node_id}")
    return frame


async def serve_client(node: ControllerNode, stream: trio.SocketStream) -> None:
    """Serve one connection on the client port, by its first four bytes."""
    try:
        first = b""
        with trio.move_on_after(FIRST_BYTES_TIMEOUT_S):
            while len(first) < 4:
                chunk = await stream.receive_some(4 - len(first))
                if not chunk:
                    break
                first += chunk
        if len(first) < 4:
            return
        if first == MAGIC:
            from controller.node.admin_server import serve_admin

            await serve_admin(node, stream)
        elif node.service is not None:
            await node.service.handle_client(stream, first)
        elif node.client_handler is not None:
            await node.client_handler(node, stream, first)
        else:
            log.info("closing client connection with unknown preamble %r", first)
    except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass  # the client went away
    except* Exception as group:
        # A bug in one connection's handling must not take the controller down.
        log.error("client connection failed", exc_info=group)
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()
