"""Synchronous helpers to talk to controller processes from plain pytest functions."""

from __future__ import annotations

import time
from typing import Any

import trio

from controller.node.admin import AdminResponse
from controller.node.admin_client import AdminError, open_admin
from controller.node.config import Address


def request(address: Address, op: str, key: str = "", value: bytes = b"") -> AdminResponse:
    async def go() -> AdminResponse:
        async with open_admin(address, 5.0) as client:
            with trio.fail_after(10):
                return await client.request(op, key, value)

    return trio.run(go)


def put(address: Address, key: str, value: bytes) -> int:
    resp = request(address, "put", key, value)
    if not resp.ok:
        raise AdminError(resp.error, resp.leader)
    return resp.index


def put_many(address: Address, items: list[tuple[str, bytes]]) -> list[int]:
    """Pipelined puts on one connection; returns the commit index of each."""

    async def go() -> list[int]:
        results: list[int] = [0] * len(items)
        async with open_admin(address, 5.0) as client:

            async def one(i: int, key: str, value: bytes) -> None:
                results[i] = (await client.checked("put", key, value)).index

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    for i, (key, value) in enumerate(items):
                        nursery.start_soon(one, i, key, value)
        return results

    return trio.run(go)


def get(address: Address, key: str) -> bytes | None:
    return request(address, "get", key).value


def status(address: Address) -> dict[str, Any]:
    resp = request(address, "status")
    assert resp.ok and resp.status is not None
    return resp.status


def wait_until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (AdminError, OSError, trio.TooSlowError) as exc:
            last = exc
        except BaseExceptionGroup as group:
            last = group
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")
