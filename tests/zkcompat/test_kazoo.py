"""kazoo (the reference Python ZooKeeper client) against a real 3-controller quorum."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.recipe.barrier import Barrier
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock
from kazoo.recipe.party import Party
from kazoo.recipe.queue import Queue
from kazoo.security import make_digest_acl

from tests.zkcompat.conftest import new_client


def test_crud_and_versions(zk: KazooClient, root: str) -> None:
    path = f"{root}/a"
    assert zk.create(path, b"one") == path
    data, stat = zk.get(path)
    assert data == b"one" and stat.version == 0 and stat.czxid == stat.mzxid
    assert stat.data_length == 3 and stat.ephemeralOwner == 0
    with pytest.raises(BadVersionError):
        zk.set(path, b"two", version=3)
    stat = zk.set(path, b"two", version=0)
    assert stat.version == 1 and zk.get(path)[0] == b"two"
    with pytest.raises(NodeExistsError):
        zk.create(path)
    with pytest.raises(NoNodeError):
        zk.get(f"{root}/missing")
    assert zk.exists(f"{root}/missing") is None
    zk.create(f"{path}/child")
    with pytest.raises(NotEmptyError):
        zk.delete(path)
    parent = zk.exists(path)
    assert parent is not None and parent.numChildren == 1 and parent.cversion == 1
    with pytest.raises(BadVersionError):
        zk.delete(f"{path}/child", version=5)
    zk.delete(path, recursive=True)
    assert zk.exists(path) is None
    zk.create(f"{root}/deep/er/path", b"x", makepath=True)
    assert zk.get(f"{root}/deep/er/path")[0] == b"x"
    children, stat = zk.get_children(root, include_data=True)
    assert children == ["deep"] and stat.numChildren == 1


def test_sequential_nodes_number_from_parent_cversion(zk: KazooClient, root: str) -> None:
    first = zk.create(f"{root}/job-", sequence=True)
    second = zk.create(f"{root}/job-", sequence=True)
    assert first == f"{root}/job-0000000000" and second == f"{root}/job-0000000001"
    zk.delete(second)
    assert zk.create(f"{root}/job-", sequence=True) == f"{root}/job-0000000002"


def test_ephemerals_go_with_a_closed_session(hosts: str, zk: KazooClient, root: str) -> None:
    other = new_client(hosts)
    path = other.create(f"{root}/e", ephemeral=True)
    zk.sync(root)  # another client's write: sync first, as ZooKeeper requires
    stat = zk.exists(path)
    assert stat is not None and stat.ephemeralOwner == other.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        other.create(f"{path}/child")
    gone = threading.Event()
    zk.exists(path, watch=lambda event: gone.set())
    other.stop()
    other.close()
    assert gone.wait(10)
    assert zk.exists(path) is None


def test_ephemerals_go_with_an_expired_session(hosts: str, zk: KazooClient, root: str) -> None:
    code = (
        "from kazoo.client import KazooClient\nimport time\n"
        f"zk = KazooClient(hosts={hosts!r}, timeout=4)\nzk.start(timeout=15)\n"
        f"zk.create({root + '/dying'!r}, ephemeral=True)\nprint('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        zk.sync(root)
        assert zk.exists(f"{root}/dying") is not None
        gone = threading.Event()

        @zk.DataWatch(f"{root}/dying")
        def watch(data: bytes | None, stat: object) -> None:
            if stat is None:
                gone.set()

        started = time.monotonic()
        proc.kill()  # no closeSession: only expiry can remove the node
        assert gone.wait(20)
        assert time.monotonic() - started >= 3.0  # not before the 4 s timeout (minus slack)
    finally:
        proc.kill()
        proc.wait()


def test_watches_fire_once_in_order(hosts: str, zk: KazooClient, root: str) -> None:
    other = new_client(hosts)
    try:
        path = f"{root}/w"
        zk.create(path, b"0")
        events: list[tuple[str, str]] = []
        fired = threading.Event()

        def record(event: object) -> None:
            events.append((event.type, event.path))  # type: ignore[attr-defined]
            fired.set()

        zk.get(path, watch=record)
        other.set(path, b"1")
        assert fired.wait(5)
        other.set(path, b"2")  # the one-shot watch is gone
        time.sleep(0.3)
        assert events == [("CHANGED", path)]
        fired.clear()
        zk.get_children(path, watch=record)
        other.create(f"{path}/c")
        assert fired.wait(5) and events[-1] == ("CHILD", path)
        fired.clear()
        zk.exists(f"{path}/later", watch=record)
        other.create(f"{path}/later")
        assert fired.wait(5) and events[-1] == ("CREATED", f"{path}/later")
        fired.clear()
        zk.get(f"{path}/later", watch=record)
        other.delete(f"{path}/later")
        assert fired.wait(5) and events[-1] == ("DELETED", f"{path}/later")
    finally:
        other.stop()


def test_data_and_children_watch_recipes(hosts: str, zk: KazooClient, root: str) -> None:
    other = new_client(hosts)
    try:
        path = f"{root}/r"
        zk.create(path, b"a")
        values: list[bytes | None] = []
        kids: list[list[str]] = []
        zk.DataWatch(path)(lambda data, stat: values.append(data))
        zk.ChildrenWatch(path)(lambda children: kids.append(sorted(children)))
        other.set(path, b"b")
        other.set(path, b"c")
        other.create(f"{path}/x")
        other.create(f"{path}/y")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (values[-1:] != [b"c"] or kids[-1:] != [["x", "y"]]):
            time.sleep(0.05)
        assert values[0] == b"a" and values[-1] == b"c"
        assert kids[0] == [] and kids[-1] == ["x", "y"]
    finally:
        other.stop()


def test_transactions_are_atomic(zk: KazooClient, root: str) -> None:
    zk.create(f"{root}/t", b"v")
    tx = zk.transaction()
    tx.create(f"{root}/t/new", b"n")
    tx.set_data(f"{root}/t", b"w")
    tx.check(f"{root}/t", 5)  # ops see earlier ops' effects: the version is 1 here
    results = tx.commit()
    assert [type(r).__name__ for r in results] == [
        "RolledBackError",
        "RolledBackError",
        "BadVersionError",
    ]
    assert zk.exists(f"{root}/t/new") is None and zk.get(f"{root}/t")[0] == b"v"
    tx = zk.transaction()
    tx.check(f"{root}/t", 0)
    tx.create(f"{root}/t/new", b"n")
    tx.set_data(f"{root}/t", b"w")
    tx.delete(f"{root}/t/new")
    results = tx.commit()
    assert results[1] == f"{root}/t/new" and results[0] is True and results[3] is True
    assert zk.get(f"{root}/t")[0] == b"w" and zk.exists(f"{root}/t/new") is None


def test_digest_acls(hosts: str, zk: KazooClient, root: str) -> None:
    zk.add_auth("digest", "alice:secret")
    path = f"{root}/private"
    zk.create(path, b"s", acl=[make_digest_acl("alice", "secret", all=True)])
    stranger = new_client(hosts)
    friend = new_client(hosts)
    try:
        with pytest.raises(NoAuthError):
            stranger.get(path)
        friend.add_auth("digest", "alice:secret")
        friend.sync(path)
        assert friend.get(path)[0] == b"s"
        acls, _ = zk.get_acls(path)
        assert [(a.id.scheme, a.perms) for a in acls] == [("digest", 31)]
        zk.set_acls(path, [make_digest_acl("bob", "pw", read=True)])
        with pytest.raises(NoAuthError):
            friend.set(path, b"x")
    finally:
        stranger.stop()
        friend.stop()


def test_sync_and_four_letter_words(zk: KazooClient, root: str) -> None:
    zk.sync(root)
    assert zk.command(b"ruok") == "imok"
    srvr = zk.command(b"srvr")
    assert "Mode: " in srvr and "Zxid: 0x" in srvr
    mntr = zk.command(b"mntr")
    assert "zk_znode_count\t" in mntr
    assert zk.server_version()[:2] == (3, 8)


def test_dirs_srst_and_crst_do_what_they_say(zk: KazooClient, root: str) -> None:
    """`dirs` measures the data directory; `srst`/`crst` reset what they name (ZooKeeper's
    ServerStats.reset and the connections' counters)."""
    zk.create(f"{root}/d", b"x" * 1000)
    sizes = dict(line.split(": ") for line in zk.command(b"dirs").strip().splitlines())
    assert int(sizes["logdir_size"]) > 1000, sizes
    assert int(sizes["datadir_size"]) >= 0, sizes

    def packets() -> int:
        mntr = dict(line.split("\t") for line in zk.command(b"mntr").strip().splitlines())
        return int(mntr["zk_packets_received"])

    for _ in range(20):
        zk.exists(root)
    before = packets()
    assert zk.command(b"srst") == "Server stats reset.\n"
    assert packets() < before
    assert zk.command(b"crst") == "Connection stats reset.\n"
    cons = zk.command(b"cons")
    received = [int(x) for x in re.findall(r"recved=(\d+)", cons)]
    assert received and max(received) <= 3, cons  # a ping or two may have arrived since


def test_lock_and_counter_recipes(hosts: str, zk: KazooClient, root: str) -> None:
    other = new_client(hosts)
    try:
        lock_a = Lock(zk, f"{root}/lock")
        lock_b = Lock(other, f"{root}/lock")
        with lock_a:
            assert not lock_b.acquire(blocking=False)
        assert lock_b.acquire(timeout=10)
        lock_b.release()

        def bump(client: KazooClient) -> None:
            counter = Counter(client, f"{root}/counter")
            for _ in range(25):
                counter += 1

        threads = [threading.Thread(target=bump, args=(c,)) for c in (zk, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert Counter(zk, f"{root}/counter").value == 50
    finally:
        other.stop()


def test_election_barrier_queue_party(hosts: str, zk: KazooClient, root: str) -> None:
    other = new_client(hosts)
    try:
        won = threading.Event()
        leaders: list[str] = []
        first = Election(zk, f"{root}/election", "first")
        second = Election(other, f"{root}/election", "second")
        t1 = threading.Thread(
            target=first.run, args=(lambda: (leaders.append("first"), won.wait(30)),)
        )
        t1.start()
        time.sleep(0.5)
        t2 = threading.Thread(target=second.run, args=(lambda: leaders.append("second"),))
        t2.start()
        time.sleep(0.5)
        assert leaders == ["first"] and sorted(first.contenders()) == ["first", "second"]
        won.set()  # first resigns by returning
        t1.join(10)
        t2.join(10)
        assert leaders == ["first", "second"]

        barrier = Barrier(zk, f"{root}/barrier")
        barrier.create()
        assert not barrier.wait(0.2)
        passed = threading.Event()
        threading.Thread(
            target=lambda: Barrier(other, f"{root}/barrier").wait(10) and passed.set()
        ).start()
        barrier.remove()
        assert passed.wait(10)

        queue = Queue(zk, f"{root}/queue")
        for item in (b"1", b"2", b"3"):
            queue.put(item)
        consumer = Queue(other, f"{root}/queue")
        other.sync(root)
        assert [consumer.get(), consumer.get(), consumer.get()] == [b"1", b"2", b"3"]

        party = Party(zk, f"{root}/party", "a")
        party.join()
        other_party = Party(other, f"{root}/party", "b")
        other_party.join()
        zk.sync(root)
        assert sorted(party) == ["a", "b"] and len(party) == 2
        other_party.leave()
        zk.sync(root)
        assert list(party) == ["a"]
    finally:
        other.stop()
