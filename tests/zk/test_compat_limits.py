"""Kind 7 of issue #8: jute.maxbuffer. ZooKeeper's default is 0xfffff: a request frame whose
length field is 1,048,575 is read, 1,048,576 closes the connection. Also: a request body that
cannot be deserialized gets MARSHALLINGERROR and the connection stays, as in ZooKeeper.

(Only reads probe the boundary: a write that large would be a transaction bigger than
ZooKeeper's own followers accept, which stalls a real ensemble.)"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from controller.zk.constants import Err
from controller.zk.constants import OpCode as Op
from controller.zk.protocol import encode_request
from controller.zk.records import ExistsRequest
from tests.zk.raw import ConnectionClosed, RawClient

JUTE_MAX_BUFFER = 0xFFFFF


def exists_frame(length: int) -> bytes:
    """An exists request whose frame length field is `length`."""
    name_len = length - 8 - 4 - 1  # header, path length, watch flag
    frame = encode_request(7, Op.EXISTS, ExistsRequest("/" + "x" * (name_len - 1), False))
    assert struct.unpack(">i", frame[:4])[0] == length
    return frame


def answer(client: RawClient, frame: bytes) -> int | str:
    """The error code of the reply to `frame`, or "closed"."""
    try:
        client.send_raw(frame)
        client.ping()
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
        return "closed"
    assert len(client.unexpected) == 1
    return client.unexpected.pop().header.err


def test_jute_max_buffer_boundary(make_raw: Callable[..., RawClient]) -> None:
    assert answer(make_raw(), exists_frame(JUTE_MAX_BUFFER)) == Err.NONODE
    other = make_raw()
    assert answer(make_raw(), exists_frame(JUTE_MAX_BUFFER + 1)) == "closed"
    other.ping()  # only the offending connection was closed


@pytest.mark.parametrize(
    "body",
    [
        struct.pack(">ii", 1, 1) + struct.pack(">i", 50) + b"/short",  # truncated create
        struct.pack(">ii", 1, 4) + struct.pack(">i", 2) + b"/x",  # getData without watch flag
        # multi / multiRead with an op ZooKeeper's MultiOperationRecord cannot hold (exists)
        struct.pack(">ii", 1, 14) + struct.pack(">i?i", 3, False, -1) + b"\0\0\0\x02/x\0",
        struct.pack(">ii", 1, 22) + struct.pack(">i?i", 3, False, -1) + b"\0\0\0\x02/x\0",
    ],
)
def test_undecodable_request_is_a_marshalling_error(raw: RawClient, body: bytes) -> None:
    assert answer(raw, struct.pack(">i", len(body)) + body) == Err.MARSHALLINGERROR
    raw.ping()  # still connected
