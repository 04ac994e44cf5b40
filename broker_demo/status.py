"""The demo broker's status port: one JSON line per request and per response.

{"request":"status"}  ->  {"broker_id":2,"epoch":...,"metadata_zxid":"0x...",...}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio

MAX_REQUEST_LINE = 64 * 1024
STATUS_REQUEST = {"request": "status"}


def answer(line: bytes, status: Callable[[], dict[str, Any]]) -> bytes:
    """One JSON request line -> one JSON response line (without the newline)."""
    try:
        request = json.loads(line)
    except ValueError:
        return json.dumps({"error": "not JSON"}).encode()
    if request == STATUS_REQUEST:
        return json.dumps(status()).encode()
    return json.dumps({"error": 'unknown request (try {"request":"status"})'}).encode()


async def serve_status(stream: trio.SocketStream, status: Callable[[], dict[str, Any]]) -> None:
    """Answer requests on one connection until the client closes it (never raises)."""
    buffer = bytearray()
    try:
        async with stream:
            async for chunk in stream:
                buffer += chunk
                while (i := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:i])
                    del buffer[: i + 1]
                    if line.strip():
                        await stream.send_all(answer(line, status) + b"\n")
                if len(buffer) > MAX_REQUEST_LINE:
                    return
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return
