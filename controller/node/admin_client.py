"""Trio client for the admin protocol: pipelined requests over one connection."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from controller.node.admin import (
    MAGIC,
    AdminDecoder,
    AdminProtocolError,
    AdminRequest,
    AdminResponse,
    encode,
)
from controller.node.config import Address


class AdminError(Exception):
    """The server answered with an error (or the connection failed)."""

    def __init__(self, message: str, leader: str = "") -> None:
        super().__init__(message)
        self.leader = leader


@asynccontextmanager
async def open_admin(address: Address, timeout: float = 5.0) -> AsyncIterator[AdminClient]:
    """Connect (bounded by `timeout`) and yield a client whose reader runs in a nursery."""
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream(address.host, address.port)
    async with stream, trio.open_nursery() as nursery:
        await stream.send_all(MAGIC)
        client = AdminClient(stream, address)
        nursery.start_soon(client._reader)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()


class AdminClient:
    """One connection; `request()` may be called concurrently (responses match by id)."""

    def __init__(self, stream: trio.SocketStream, address: Address) -> None:
        self.address = address
        self._stream = stream
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[trio.Event, list[AdminResponse]]] = {}
        self._send_lock = trio.Lock()
        self._error: Exception | None = None

    async def _reader(self) -> None:
        decoder = AdminDecoder(AdminResponse)
        try:
            async for data in self._stream:
                decoder.feed(bytes(data))
                while (resp := decoder.next()) is not None:
                    waiter = self._waiting.pop(resp.id, None)
                    if waiter is not None:
                        waiter[1].append(resp)
                        waiter[0].set()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._error = exc
        self._error = self._error or ConnectionError(f"{self.address} closed the connection")
        for event, _ in self._waiting.values():
            event.set()
        self._waiting.clear()

    async def request(self, op: str, key: str = "", value: bytes = b"") -> AdminResponse:
        if self._error is not None:
            raise AdminError(f"connection to {self.address} lost: {self._error}")
        req = AdminRequest(next(self._ids), op, key, value)
        event = trio.Event()
        box: list[AdminResponse] = []
        self._waiting[req.id] = (event, box)
        async with self._send_lock:
            await self._stream.send_all(encode(req))
        await event.wait()
        if not box:
            raise AdminError(f"connection to {self.address} lost: {self._error}")
        return box[0]

    async def checked(self, op: str, key: str = "", value: bytes = b"") -> AdminResponse:
        resp = await self.request(op, key, value)
        if not resp.ok:
            raise AdminError(resp.error, resp.leader)
        return resp


async def query_status(address: Address, timeout: float) -> dict[str, Any]:
    """One controller's own status (admin protocol); raises AdminError naming it."""
    try:
        with trio.fail_after(timeout):
            async with open_admin(address, timeout) as client:
                status = (await client.checked("status")).status
    except (
        OSError,
        trio.TooSlowError,
        trio.BrokenResourceError,
        AdminError,
        AdminProtocolError,
        ExceptionGroup,
    ) as exc:
        leaf: BaseException = exc
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        expected = OSError | trio.TooSlowError | trio.BrokenResourceError | AdminError
        if isinstance(leaf, AdminProtocolError):
            raise AdminError(f"{address}: the answer is not the admin protocol") from None
        if not isinstance(leaf, expected):
            raise
        if isinstance(leaf, trio.TooSlowError):
            reason = f"no answer within {timeout:g} s"
        else:
            reason = str(leaf) or type(leaf).__name__
        raise AdminError(f"{address}: {reason}") from None
    assert status is not None
    return status


async def fetch_status(servers: Sequence[Address], timeout: float = 3.0) -> dict[str, Any]:
    """Status from the leader if any server knows it, else from the first that answers."""
    errors: list[str] = []
    fallback: dict[str, Any] | None = None
    for address in servers:
        try:
            status = await query_status(address, timeout)
        except AdminError as exc:
            errors.append(str(exc))
            continue
        if status["role"] == "leader":
            return status
        fallback = fallback or status
        leader = status.get("leader_client_address")
        if leader:
            try:
                leader_status = await query_status(Address.parse(leader), timeout)
            except AdminError as exc:
                errors.append(str(exc))
                continue
            if leader_status["role"] == "leader":
                return leader_status
    if fallback is not None:
        return fallback
    raise AdminError("no controller reachable (" + "; ".join(errors) + ")")


async def fetch_all_statuses(leader_status: dict[str, Any], timeout: float = 2.0) -> list[Any]:
    """Every member's own status (for per-controller figures); unreachable ones are skipped."""
    out: list[Any] = []
    for member in leader_status["voters"] + leader_status["observers"]:
        if member["id"] == leader_status["node_id"]:
            out.append(leader_status)
            continue
        if not member["client_address"]:
            continue
        try:
            out.append(await query_status(Address.parse(member["client_address"]), timeout))
        except AdminError:
            continue
    return out
