"""The ZooKeeper protocol on one client connection: handshake, then requests (trio shell).

Works on any `trio.abc.Stream`, so tests can drive it over memory streams. Reads are answered
from this controller's replica when they reach the head of the connection's queue; writes are
decoded once here (a malformed one never reaches the log), turned into typed commands and
handed to the forwarder. While the controller has `global_outstanding_limit` requests queued,
no connection is read (ZooKeeper's throttling): clients slow down, nothing is dropped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from controller.coord import acl as acls
from controller.coord.commands import Applied, Barrier, CloseSession, Command, CreateSession, Write
from controller.coord.datatree import ZkError
from controller.coord.machine import WRITE_OPS
from controller.limits import MAX_REPLY_BACKLOG_BYTES
from controller.service.connection import ClientConnection, Slot
from controller.service.fourletter import four_letter_reply
from controller.zk.constants import XID_AUTH, XID_PING, Err, KeeperState, OpCode
from controller.zk.jute import JuteError
from controller.zk.protocol import (
    ConnectEvent,
    FourLetterWord,
    FrameTooLarge,
    RequestEvent,
    ServerFramer,
    UnknownOpcode,
    decode_request,
    encode_connect_response,
    encode_notification,
    encode_reply,
)
from controller.zk.records import (
    AuthPacket,
    ConnectRequest,
    ConnectResponse,
    SetWatches,
    SetWatches2,
    SyncRequest,
    SyncResponse,
)

if TYPE_CHECKING:
    from controller.service.zk_service import ZkService

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 10.0

# Opcodes as plain ints: enum member lookups are slow on the per-request path.
_OP_AUTH = int(OpCode.AUTH)
_OP_CLOSE_SESSION = int(OpCode.CLOSE_SESSION)
_OP_PING = int(OpCode.PING)
_OP_SET_WATCHES = int(OpCode.SET_WATCHES)
_OP_SET_WATCHES2 = int(OpCode.SET_WATCHES2)
_OP_SYNC = int(OpCode.SYNC)


class ClientPort:
    """Serves client connections for a `ZkService` (see module docstring)."""

    def __init__(self, service: ZkService) -> None:
        self.service = service
        self.settings = service.settings
        self.node = service.node
        self.limit = service.limit

    async def serve(self, stream: trio.abc.Stream, first: bytes, address: str) -> None:
        svc = self.service
        limit = self.settings.max_client_cnxns
        if limit and svc.per_address.get(address, 0) >= limit:
            log.warning("too many connections from %s (max %d): closing", address, limit)
            return
        conn = ClientConnection(stream, address, self.limit)
        svc.per_address[address] = svc.per_address.get(address, 0) + 1
        svc.connections[conn.id] = conn
        try:
            framer = ServerFramer(self.settings.jute_max_buffer)
            framer.feed(first)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.write_loop, svc.count_sent)
                try:
                    await self._read_loop(conn, framer)
                finally:
                    svc.forwarder.flush_deferred()  # what it sent is still processed
                    conn.close()
                    # Let the writer flush what is queued (e.g. a closeSession reply).
                    with trio.move_on_after(1):
                        while conn.out:
                            await trio.sleep(0.001)
                    nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            conn.release()
            svc.forget_connection(conn)
            svc.per_address[address] -= 1
            if not svc.per_address[address]:
                del svc.per_address[address]

    def _withdraw_unsent(self, conn: ClientConnection) -> None:
        """A request of `conn` failed with unknown outcome: its later writes not yet handed
        to a leader are withdrawn, so they cannot apply after a gap. (A client that simply
        closes its socket is different: what it sent is still processed, as in ZooKeeper.)"""
        for slot in conn.queue:
            if slot.seq and not slot.done:
                self.service.forwarder.withdraw(slot.seq)

    async def _read_loop(self, conn: ClientConnection, framer: ServerFramer) -> None:
        with trio.move_on_after(HANDSHAKE_TIMEOUT_S):
            event = await self._next_event(conn, framer)
            if isinstance(event, FourLetterWord):
                conn.push(four_letter_reply(self.service, event.word.decode("ascii")).encode())
                return
            if event is None:
                return
            assert isinstance(event, ConnectEvent)  # the framer's first event otherwise
            if not await self._handshake(conn, event.request):
                return
        if not conn.session_id:
            return  # the handshake timed out
        limit = self.limit
        budget = -1  # requests this reader may still queue in its turn; -1: not throttled
        while not conn.closing:
            if limit.full or budget == 0 or (budget < 0 and limit.contended):
                self.service.forwarder.flush_deferred()  # never wait on our own writes
                with trio.CancelScope() as conn.turn_scope:
                    budget = await limit.wait_for_room()
                conn.turn_scope = None
                continue  # (closed while waiting: the loop ends)
            event = await self._next_event(conn, framer)
            if event is None:
                return
            if not isinstance(event, RequestEvent):
                log.warning("closing client %s: unexpected %s", conn.address, event)
                return
            if budget > 0:
                budget -= 1
                if budget == 0 and not limit.contended and limit.count <= limit.limit // 2:
                    budget = -1  # throttling is over: read freely again
            self.service.packets_received += 1
            conn.received += 1
            self.service.touch(conn.session_id)
            if not self._handle_request(conn, event):
                return

    async def _next_event(
        self, conn: ClientConnection, framer: ServerFramer
    ) -> FourLetterWord | ConnectEvent | RequestEvent | None:
        """The client's next event, reading more when needed (but not while the connection
        has `max_outstanding` requests queued or a reply backlog its client does not read);
        None when the client closed or sent a frame that cannot be parsed."""
        while True:
            try:
                event = framer.next_event()
            except (FrameTooLarge, JuteError) as exc:
                log.warning("closing client %s: %s", conn.address, exc)
                self.service.forwarder.flush_deferred()
                return None
            if event is not None:
                return event
            # All that was read is queued: its writes go now, before this task waits.
            self.service.forwarder.flush_deferred()
            while len(conn.queue) >= self.settings.max_outstanding and not conn.closing:
                conn.room = trio.Event()
                await conn.room.wait()
            await conn.wait_for_reader(MAX_REPLY_BACKLOG_BYTES)
            data = await conn.stream.receive_some(65536)
            if not data:
                return None
            framer.feed(bytes(data))

    # ------------------------------------------------------------------ handshake

    async def _handshake(self, conn: ClientConnection, req: ConnectRequest) -> bool:
        node, svc = self.node, self.service
        if req.last_zxid_seen > node.last_zxid:
            log.info(
                "refusing client %s: it has seen zxid 0x%x, we are at 0x%x",
                conn.address,
                req.last_zxid_seen,
                node.last_zxid,
            )
            return False
        timeout = max(self.settings.min_timeout, min(self.settings.max_timeout, req.timeout))
        if req.session_id == 0:
            password = os.urandom(16)
            result = await self._await_command(
                lambda seq: CreateSession(node.node_id, seq, timeout, password)
            )
            if result is None or result.err:
                return False
            session_id = result.session_id
        else:
            session = svc.machine.sessions.get(req.session_id)
            if session is None:
                # This replica may lag the one that created it: catch up through the log.
                await self._await_command(lambda seq: Barrier(node.node_id, seq))
                session = svc.machine.sessions.get(req.session_id)
            if session is None or session.password != req.passwd:
                expired = ConnectResponse(0, 0, 0, b"\0" * 16, req.read_only)
                conn.push(encode_connect_response(expired))
                return False
            session_id, password = session.session_id, session.password
            timeout = session.timeout_ms
        conn.session_id, conn.timeout_ms = session_id, timeout
        svc.by_session.setdefault(session_id, set()).add(conn)
        svc.touch(session_id)
        response = ConnectResponse(0, timeout, session_id, password, req.read_only)
        conn.push(encode_connect_response(response))
        return True

    async def _await_command(self, build: Callable[[int], Command]) -> Applied | None:
        # Right after an election a follower may not know the leader yet: the request waits
        # for one (bounded here) rather than turning the client away.
        with trio.move_on_after(HANDSHAKE_TIMEOUT_S):
            return await self.service.propose_command(build)
        return None

    # ------------------------------------------------------------------ requests

    def _handle_request(self, conn: ClientConnection, ev: RequestEvent) -> bool:
        """Queue one request; False to close the connection."""
        xid, op = ev.xid, ev.op
        slot = Slot(xid, op)
        conn.enqueue(slot)
        started = time.monotonic()
        if op == _OP_PING:
            slot.compute = lambda: encode_reply(XID_PING, self.node.last_zxid, 0, None)
            self._answer(conn)
            return True
        try:
            record = decode_request(op, ev.body)
        except UnknownOpcode:
            slot.compute = lambda: encode_reply(xid, self.node.last_zxid, Err.UNIMPLEMENTED, None)
            self._answer(conn)
            return True
        except JuteError as exc:
            if op == _OP_AUTH:
                log.warning("closing client %s: malformed auth packet: %s", conn.address, exc)
                return False
            # ZooKeeper answers a request it cannot deserialize with MARSHALLINGERROR and
            # keeps the connection; such a write never reaches the log here.
            log.info("malformed request (op %d) from %s: %s", op, conn.address, exc)
            slot.compute = lambda: encode_reply(
                xid, self.node.last_zxid, Err.MARSHALLINGERROR, None
            )
            self._answer(conn)
            return True
        if op == _OP_AUTH:
            assert isinstance(record, AuthPacket)
            return self._auth(conn, slot, record)
        if op == _OP_CLOSE_SESSION:
            self._write(conn, slot, started, close=True)
        elif op in WRITE_OPS:
            self._write(conn, slot, started, record=record)
        elif op == _OP_SYNC:
            assert isinstance(record, SyncRequest)
            self._write(conn, slot, started, sync_path=record.path)
        else:
            slot.compute = lambda: self._read(conn, xid, op, record, started)
            self._answer(conn)
        return True

    def _answer(self, conn: ClientConnection) -> None:
        conn.answer_ready(self.settings.max_outstanding)

    def _auth(self, conn: ClientConnection, slot: Slot, packet: AuthPacket) -> bool:
        if packet.scheme == "digest":
            ident = acls.digest_id(packet.auth.decode("utf-8", "replace"))
            added = [("digest", ident)]
            if self.settings.super_digest and ident == self.settings.super_digest:
                added.append(("super", ""))
            for identity in added:  # ServerCnxn.addAuthInfo keeps each id once
                if identity not in conn.identities:
                    conn.identities.append(identity)
            slot.compute = lambda: encode_reply(XID_AUTH, 0, 0, None)
            self._answer(conn)
            return True
        log.info("auth scheme %r from %s refused", packet.scheme, conn.address)
        conn.push(encode_reply(XID_AUTH, 0, Err.AUTHFAILED, None))
        return False

    def _write(
        self,
        conn: ClientConnection,
        slot: Slot,
        started: float,
        *,
        record: Any = None,
        close: bool = False,
        sync_path: str | None = None,
    ) -> None:
        xid, op = slot.xid, slot.op
        session_id = conn.session_id
        identities = tuple(conn.identities)
        node_id = self.node.node_id
        svc = self.service

        def build(seq: int) -> Command:
            if close:
                return CloseSession(node_id, seq, session_id, False)
            if sync_path is not None:
                return Barrier(node_id, seq)
            return Write(node_id, seq, session_id, op, record, identities)

        def done(result: Applied) -> None:
            conn.pending_writes -= 1
            if result.err == Err.CONNECTIONLOSS and result.zxid == 0:
                # Outcome unknown: let the client reconnect, as ZooKeeper does.
                self._withdraw_unsent(conn)
                conn.close()
                return
            zxid = max(result.zxid, self.node.last_zxid)
            if sync_path is not None:
                slot.reply = encode_reply(xid, zxid, 0, SyncResponse(sync_path))
            elif close:
                slot.reply = encode_reply(xid, zxid, 0, None)
            else:
                slot.reply = encode_reply(xid, zxid, result.err, result.response)
            slot.done = True
            svc.record_latency(started)
            self._answer(conn)
            if close:
                conn.close()

        conn.pending_writes += 1
        slot.seq = svc.forwarder.propose(build, done, defer=True)

    def _read(
        self, conn: ClientConnection, xid: int, op: int, record: Any, started: float
    ) -> bytes:
        svc = self.service
        zxid = self.node.last_zxid
        try:
            if op in (_OP_SET_WATCHES, _OP_SET_WATCHES2):
                assert isinstance(record, SetWatches | SetWatches2)
                svc.reads.set_watches(conn.id, record, lambda ev, path: fire(conn, ev, path))
                response = None
            else:
                response = svc.reads.read(conn.id, conn.session_id, conn.identities, op, record)
        except ZkError as exc:
            return encode_reply(xid, zxid, exc.code, None)
        finally:
            svc.record_latency(started)
        return encode_reply(xid, zxid, 0, response)


def fire(conn: ClientConnection, event: int, path: str) -> None:
    """Queue a watch notification on a connection."""
    conn.push(encode_notification(event, KeeperState.SYNC_CONNECTED, path, -1))
