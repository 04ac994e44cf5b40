"""Limits and admin settings: connections per address, four-letter whitelist, superDigest."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

from controller.coord.acl import digest_id
from controller.localquorum import LocalQuorum

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalQuorum]:
    q = LocalQuorum(
        Path(tmp_path_factory.mktemp("limits")),
        extra_args=[
            "--max-client-cnxns", "3",
            "--4lw-whitelist", "ruok,srvr",
            "--super-digest", digest_id("super:admin-secret"),
        ],
    )  # fmt: skip
    with q:
        q.wait_for_leader()
        yield q


def handshake(q: LocalQuorum) -> socket.socket:
    addr = q.addresses[0]
    sock = socket.create_connection((addr.host, addr.port), timeout=10)
    body = struct.pack(">iqiqi", 0, 0, 10000, 0, 16) + b"\0" * 16 + b"\0"
    sock.sendall(struct.pack(">i", len(body)) + body)
    return sock


def answered(sock: socket.socket) -> bool:
    try:
        return len(sock.recv(4)) == 4
    except (ConnectionResetError, TimeoutError):
        return False


def test_connections_per_address_are_capped(limited: LocalQuorum) -> None:
    socks = [handshake(limited) for _ in range(3)]
    assert all(answered(s) for s in socks)
    extra = handshake(limited)
    assert not answered(extra)  # closed at once: over max_client_cnxns
    extra.close()
    socks.pop().close()
    import time

    time.sleep(0.3)
    again = handshake(limited)
    assert answered(again)
    for s in [*socks, again]:
        s.close()


def four(q: LocalQuorum, word: bytes) -> str:
    addr = q.addresses[1]
    with socket.create_connection((addr.host, addr.port), timeout=10) as sock:
        sock.sendall(word)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out.decode()


def test_four_letter_whitelist(limited: LocalQuorum) -> None:
    assert four(limited, b"ruok") == "imok"
    assert "Mode: " in four(limited, b"srvr")
    assert "not executed because it is not in the whitelist" in four(limited, b"mntr")


def test_super_digest_passes_every_acl(limited: LocalQuorum) -> None:
    owner = KazooClient(hosts=str(limited.addresses[2]), timeout=10)
    admin = KazooClient(hosts=str(limited.addresses[2]), timeout=10)
    owner.start(timeout=15)
    admin.start(timeout=15)
    try:
        owner.add_auth("digest", "alice:pw")
        owner.create("/locked", b"secret", acl=[make_digest_acl("alice", "pw", all=True)])
        with pytest.raises(NoAuthError):
            admin.get("/locked")
        admin.add_auth("digest", "super:admin-secret")
        assert admin.get("/locked")[0] == b"secret"
    finally:
        owner.stop()
        admin.stop()
