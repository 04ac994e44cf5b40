"""Bad input closes (or is refused on) only the offending connection; everyone else goes on."""

from __future__ import annotations

import socket
import struct

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import UnimplementedError

from controller.localquorum import LocalQuorum
from controller.zk.constants import Err


def connect_raw(q: LocalQuorum) -> socket.socket:
    addr = q.addresses[0]
    sock = socket.create_connection((addr.host, addr.port), timeout=10)
    body = struct.pack(">iqiqi", 0, 0, 10000, 0, 16) + b"\0" * 16 + b"\0"
    sock.sendall(struct.pack(">i", len(body)) + body)
    length = struct.unpack(">i", recv_exact(sock, 4))[0]
    recv_exact(sock, length)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def closed_by_server(sock: socket.socket) -> bool:
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


@pytest.fixture
def witness(quorum: LocalQuorum, zk: KazooClient) -> KazooClient:
    """A client on the same controller that must keep working."""
    w = KazooClient(hosts=str(quorum.addresses[0]), timeout=10)
    w.start(timeout=15)
    yield w  # type: ignore[misc]
    w.stop()


def still_works(client: KazooClient, root: str) -> None:
    path = client.create(f"{root}/alive-", b"x", sequence=True)
    assert client.get(path)[0] == b"x"


def test_oversized_frame_closes_only_that_connection(
    quorum: LocalQuorum, witness: KazooClient, root: str
) -> None:
    sock = connect_raw(quorum)
    sock.sendall(struct.pack(">i", 2 << 20) + b"\0" * 1000)  # above jute.maxbuffer (1 MiB)
    assert closed_by_server(sock)
    still_works(witness, root)


def test_truncated_record_is_a_marshalling_error(
    quorum: LocalQuorum, witness: KazooClient, root: str
) -> None:
    # As ZooKeeper: the request fails with MARSHALLINGERROR, the connection stays.
    sock = connect_raw(quorum)
    payload = struct.pack(">ii", 1, 1) + struct.pack(">i", 50) + b"/short"  # create, cut
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    length = struct.unpack(">i", recv_exact(sock, 4))[0]
    xid, _zxid, err = struct.unpack(">iqi", recv_exact(sock, length)[:16])
    assert (xid, err) == (1, Err.MARSHALLINGERROR)
    sock.close()
    still_works(witness, root)


def test_garbage_handshake_is_refused(quorum: LocalQuorum, witness: KazooClient, root: str) -> None:
    addr = quorum.addresses[0]
    with socket.create_connection((addr.host, addr.port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", 7) + b"garbage")
        assert closed_by_server(sock)
    still_works(witness, root)


def test_unknown_opcode_gets_unimplemented(
    quorum: LocalQuorum, witness: KazooClient, root: str
) -> None:
    sock = connect_raw(quorum)
    payload = struct.pack(">ii", 7, 999)
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    length = struct.unpack(">i", recv_exact(sock, 4))[0]
    xid, _zxid, err = struct.unpack(">iqi", recv_exact(sock, length)[:16])
    assert (xid, err) == (7, Err.UNIMPLEMENTED)
    # The connection stays usable after an unknown opcode.
    ping = struct.pack(">ii", -2, 11)
    sock.sendall(struct.pack(">i", len(ping)) + ping)
    length = struct.unpack(">i", recv_exact(sock, 4))[0]
    assert struct.unpack(">i", recv_exact(sock, length)[:4])[0] == -2
    sock.close()
    still_works(witness, root)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("no-slash", Err.BADARGUMENTS),
        ("/x\u0001", Err.BADARGUMENTS),
        ("", Err.BADARGUMENTS),
        # ZooKeeper looks the parent up before validating the path (tests/zk/test_compat_paths)
        ("/trailing/", Err.NONODE),
        ("/a//b", Err.NONODE),
        ("/a/./b", Err.NONODE),
    ],
)
def test_invalid_paths_are_refused(
    quorum: LocalQuorum, witness: KazooClient, root: str, path: str, expected: int
) -> None:
    sock = connect_raw(quorum)
    raw = path.encode()
    acl = struct.pack(">ii", 1, 31) + struct.pack(">i", 5) + b"world" + struct.pack(">i", 6)
    acl += b"anyone"
    body = struct.pack(">i", len(raw)) + raw + struct.pack(">i", 0) + acl + struct.pack(">i", 0)
    payload = struct.pack(">ii", 3, 1) + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    length = struct.unpack(">i", recv_exact(sock, 4))[0]
    xid, _zxid, err = struct.unpack(">iqi", recv_exact(sock, length)[:16])
    assert (xid, err) == (3, expected)
    sock.close()
    still_works(witness, root)


def test_reconfig_and_sasl_are_unimplemented(witness: KazooClient, root: str) -> None:
    with pytest.raises(UnimplementedError):
        witness.reconfig(joining=None, leaving="2", new_members=None)
    still_works(witness, root)


def test_four_letter_word_whitelist_and_unknown_words(quorum: LocalQuorum) -> None:
    addr = quorum.addresses[0]
    for word, expected in ((b"ruok", b"imok"), (b"isro", b"rw"), (b"srvr", b"Mode: ")):
        with socket.create_connection((addr.host, addr.port), timeout=10) as sock:
            sock.sendall(word)
            out = b""
            while chunk := sock.recv(65536):
                out += chunk
            assert expected in out, (word, out)
