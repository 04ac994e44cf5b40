"""Limits and bad input.

Kind 7 of issue #8: jute.maxbuffer. ZooKeeper's default is 0xfffff: a request frame whose
length field is 1,048,575 is read, 1,048,576 closes the connection. Also: a request body that
cannot be deserialized gets MARSHALLINGERROR and the connection stays, as in ZooKeeper; a
handshake that cannot be read closes only that connection.

(Only reads probe the boundary: a write that large would be a transaction bigger than
ZooKeeper's own followers accept, which stalls a real ensemble.)

Admin settings, on a separate one-server target: connections per client address
(`maxClientCnxns` / `--max-client-cnxns`), the four-letter-word whitelist
(`4lw.commands.whitelist` / `--4lw-whitelist`) and the super user
(`zookeeper.DigestAuthenticationProvider.superDigest` / `--super-digest`)."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

from controller.coord.acl import digest_id
from controller.zk.constants import Err
from controller.zk.constants import OpCode as Op
from controller.zk.protocol import ReplyEvent, encode_request
from controller.zk.records import CreateRequest, ExistsRequest
from tests.zk.conftest import Target, start_target
from tests.zk.raw import OPEN, ConnectionClosed, RawClient

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


def test_garbage_handshake_closes_only_that_connection(
    make_raw: Callable[..., RawClient], zk_target: Target
) -> None:
    witness = make_raw()
    host, _, port = zk_target.servers[0].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", 7) + b"garbage")
        assert closed_by_server(sock)
    path = f"/alive-{uuid.uuid4().hex[:8]}"
    assert witness.call(Op.CREATE, CreateRequest(path, b"x", OPEN, 0)).err == 0


def test_unknown_opcode_is_unimplemented(raw: RawClient) -> None:
    raw.send_raw(encode_request(7, 999, None))
    reply = raw._next()
    assert isinstance(reply, ReplyEvent)
    assert (reply.header.xid, reply.header.err) == (7, Err.UNIMPLEMENTED)


@pytest.mark.ours_only(
    "ZooKeeper 3.8 closes the connection after answering an unknown opcode "
    "(UnimplementedRequestProcessor sends ZUNIMPLEMENTED, then closes the session's connection);"
    " ours keeps it open"
)
def test_connection_stays_usable_after_an_unknown_opcode(raw: RawClient) -> None:
    assert answer(raw, encode_request(7, 999, None)) == Err.UNIMPLEMENTED
    raw.ping()
    assert raw.call(Op.EXISTS, ExistsRequest("/", False)).err == 0


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed `sock` (it must, within the socket's timeout)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


SUPER = "super:admin-secret"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target = start_target(
        tmp_path_factory,
        single=True,
        real_config=(
            "maxClientCnxns=3",
            "4lw.commands.whitelist=ruok,srvr",
            # Unknown zoo.cfg keys become "zookeeper."-prefixed system properties.
            f"DigestAuthenticationProvider.superDigest={digest_id(SUPER)}",
        ),
        ours_args=(
            "--max-client-cnxns", "3",
            "--4lw-whitelist", "ruok,srvr",
            "--super-digest", digest_id(SUPER),
        ),
    )  # fmt: skip
    try:
        yield target
    finally:
        target.stop()


def hang_up(sock: socket.socket) -> None:
    """Close the session and wait until the server closed the connection: only then is its
    slot free again (a plain close is noticed by the server some time later)."""
    with contextlib.suppress(OSError):
        sock.sendall(struct.pack(">iii", 8, 1, -11))  # closeSession
        closed_by_server(sock)
    sock.close()
    time.sleep(0.1)


def handshake(target: Target) -> socket.socket | None:
    """A connection that sent a ConnectRequest, or None if the server already refused it
    (ZooKeeper closes an accepted connection over the cap at once: connect or send fails)."""
    host, _, port = target.servers[0].rpartition(":")
    body = struct.pack(">iqiqi", 0, 0, 10000, 0, 16) + b"\0" * 16 + b"\0"
    try:
        sock = socket.create_connection((host, int(port)), timeout=10)
    except (BrokenPipeError, ConnectionResetError):
        return None
    try:
        sock.sendall(struct.pack(">i", len(body)) + body)
    except (BrokenPipeError, ConnectionResetError):
        sock.close()
        return None
    return sock


def answered(sock: socket.socket | None) -> bool:
    if sock is None:
        return False
    try:
        return len(sock.recv(4)) == 4
    except (ConnectionResetError, TimeoutError):
        return False


def four(target: Target, word: bytes) -> str:
    host, _, port = target.servers[0].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(word)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out.decode()


def test_four_letter_whitelist(limited: Target) -> None:
    assert four(limited, b"ruok") == "imok"
    assert "Mode: " in four(limited, b"srvr")
    assert four(limited, b"mntr") == "mntr is not executed because it is not in the whitelist.\n"


def test_super_digest_passes_every_acl(limited: Target) -> None:
    owner = KazooClient(hosts=limited.connect_string, timeout=10)
    admin = KazooClient(hosts=limited.connect_string, timeout=10)
    owner.start(timeout=15)
    admin.start(timeout=15)
    try:
        path = f"/locked-{uuid.uuid4().hex[:8]}"
        owner.add_auth("digest", "alice:pw")
        owner.create(path, b"secret", acl=[make_digest_acl("alice", "pw", all=True)])
        with pytest.raises(NoAuthError):
            admin.get(path)
        admin.add_auth("digest", SUPER)
        assert admin.get(path)[0] == b"secret"
    finally:
        owner.stop()
        admin.stop()


# Last: the connections it leaves are released only once the server noticed.
def test_connections_per_address_are_capped(limited: Target) -> None:
    socks = [handshake(limited) for _ in range(3)]
    try:
        assert all(answered(s) for s in socks)
        extra = handshake(limited)
        assert not answered(extra)  # closed at once: over maxClientCnxns
        if extra is not None:
            extra.close()
        first = socks.pop()
        assert first is not None
        hang_up(first)
        again = handshake(limited)
        socks.append(again)
        assert answered(again)
    finally:
        for s in socks:
            if s is not None:
                hang_up(s)
