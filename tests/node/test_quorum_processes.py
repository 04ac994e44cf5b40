"""Real controller processes on loopback: failover without losing committed entries, and
catch-up of a restarted controller by log and by snapshot."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.localquorum import LocalQuorum
from controller.node.admin_client import AdminError
from controller.node.config import Address
from tests.node.helpers import get, put, put_many, status, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def quorum(tmp_path: Path) -> Iterator[LocalQuorum]:
    q = LocalQuorum(
        tmp_path / "quorum",
        log_level="INFO",
        extra_args=["--snapshot-interval-entries", "100"],
    )
    with q:
        yield q
    for i in q.ids:
        log = (tmp_path / "quorum" / f"node-{i}.log").read_text()
        assert "Traceback" not in log, f"node {i} logged a traceback:\n{log[-3000:]}"


def leader_address(q: LocalQuorum, exclude: int | None = None) -> tuple[int, Address]:
    st = q.wait_for_leader(exclude=exclude)
    return st["node_id"], Address.parse(st["leader_client_address"])


def test_kill_leader_loses_no_committed_entry(quorum: LocalQuorum) -> None:
    leader_id, leader = leader_address(quorum)
    first = [(f"k{i}", f"v{i}".encode()) for i in range(150)]
    indexes = put_many(leader, first)
    assert len(set(indexes)) == 150

    quorum.kill(leader_id)  # SIGKILL: no graceful resignation
    new_id, new_leader = leader_address(quorum, exclude=leader_id)
    assert new_id != leader_id
    second = [(f"k{i}", f"v{i}".encode()) for i in range(150, 750)]
    # In chunks, so the leader snapshots several times: the log is compacted to the
    # snapshot before the latest, which must lie past the killed controller's last entry.
    for chunk in range(0, len(second), 100):
        put_many(new_leader, second[chunk : chunk + 100])

    # Every acknowledged write is on the new leader and on the surviving follower.
    survivors = [i for i in quorum.ids if i != leader_id]
    commit = status(new_leader)["commit_index"]
    for nid in survivors:
        addr = quorum.client_address(nid)
        wait_until(lambda a=addr: status(a)["applied_index"] >= commit, what="follower apply")
        for key, value in first + second:
            assert get(addr, key) == value, (nid, key)

    # The killed controller restarts, is now far behind a compacted log (snapshot every 100
    # entries, compacted to the previous snapshot), and must catch up through a snapshot
    # transfer.
    quorum.start_node(leader_id)
    old = quorum.client_address(leader_id)
    wait_until(lambda: status(old)["applied_index"] >= commit, what="restarted node catch-up")
    st = status(old)
    assert st["snapshots_installed"] >= 1
    assert st["role"] == "follower"
    for key, value in first + second:
        assert get(old, key) == value


def test_restarted_follower_catches_up_by_log(tmp_path: Path) -> None:
    with LocalQuorum(tmp_path / "q", log_level="INFO") as q:
        leader_id, leader = leader_address(q)
        follower = next(i for i in q.ids if i != leader_id)
        put_many(leader, [(f"a{i}", b"x") for i in range(20)])
        q.kill(follower)
        put_many(leader, [(f"b{i}", b"y") for i in range(30)])
        commit = status(leader)["commit_index"]
        q.start_node(follower)
        addr = q.client_address(follower)
        wait_until(lambda: status(addr)["applied_index"] >= commit, what="catch-up by log")
        st = status(addr)
        assert st["snapshots_installed"] == 0
        assert get(addr, "b29") == b"y"


def test_full_restart_recovers_the_log(tmp_path: Path) -> None:
    q = LocalQuorum(tmp_path / "q")
    with q:
        _, leader = leader_address(q)
        put_many(leader, [(f"k{i}", b"v") for i in range(30)])
        commit = status(leader)["commit_index"]
    with q:  # same data dirs, same ports
        _, leader = leader_address(q)
        wait_until(lambda: status(leader)["commit_index"] > commit, what="recommit")
        assert get(leader, "k29") == b"v"


def test_malformed_peer_frames_close_only_that_connection(quorum: LocalQuorum) -> None:
    # Every controller listening, not just a leader elected by two of them: the garbage goes
    # to controller 1's Raft port, which a slow starter may not have opened yet.
    quorum.wait_until_ready()
    _, leader = leader_address(quorum)
    for garbage in (b"\x00\x00\x00\x05hello", b"\xff\xff\xff\xff", b"\x00\x00\x00\x02\x92\x63"):
        with socket.create_connection(("127.0.0.1", quorum.raft_ports[0]), timeout=5) as s:
            s.sendall(garbage)
            s.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(10) == b""  # the controller closed it
    put(leader, "after-garbage", b"ok")
    assert get(leader, "after-garbage") == b"ok"
    assert all(quorum.alive(i) for i in quorum.ids)


def test_writes_to_a_follower_are_refused_with_the_leader_address(quorum: LocalQuorum) -> None:
    leader_id, leader = leader_address(quorum)
    follower = quorum.client_address(next(i for i in quorum.ids if i != leader_id))
    wait_until(lambda: status(follower)["leader_client_address"] == str(leader), what="follower")
    with pytest.raises(AdminError) as info:
        put(follower, "k", b"v")
    assert info.value.leader == str(leader)
