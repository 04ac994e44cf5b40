"""Core ZooKeeper semantics through kazoo: CRUD, versions, sequential and ephemeral nodes,
Stat fields, multi-op transactions, sync, ACLs and four-letter words."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    UnimplementedError,
)
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Permissions, make_digest_acl

from tests.zk.conftest import Target, wait_until


def test_crud(zk: KazooClient, root: str) -> None:
    path = f"{root}/a"
    assert zk.exists(path) is None
    assert zk.create(path, b"one") == path
    data, stat = zk.get(path)
    assert data == b"one"
    assert stat.version == 0
    stat = zk.set(path, b"two")
    assert stat.version == 1
    assert zk.get(path)[0] == b"two"
    assert zk.exists(path).version == 1
    zk.delete(path)
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.get(path)
    with pytest.raises(NoNodeError):
        zk.set(path, b"x")
    with pytest.raises(NoNodeError):
        zk.delete(path)


def test_empty_data_and_binary(zk: KazooClient, root: str) -> None:
    zk.create(f"{root}/empty")
    data, stat = zk.get(f"{root}/empty")
    assert data == b""
    assert stat.dataLength == 0
    blob = bytes(range(256)) * 4
    zk.create(f"{root}/blob", blob)
    data, stat = zk.get(f"{root}/blob")
    assert data == blob
    assert stat.dataLength == len(blob)


def test_versions(zk: KazooClient, root: str) -> None:
    path = f"{root}/v"
    zk.create(path, b"0")
    with pytest.raises(BadVersionError):
        zk.set(path, b"x", version=5)
    assert zk.set(path, b"1", version=0).version == 1
    assert zk.set(path, b"2", version=1).version == 2
    assert zk.set(path, b"3", version=-1).version == 3
    with pytest.raises(BadVersionError):
        zk.delete(path, version=2)
    zk.delete(path, version=3)
    assert zk.exists(path) is None


def test_errors_and_makepath(zk: KazooClient, root: str) -> None:
    with pytest.raises(NoNodeError):
        zk.create(f"{root}/missing/child")
    assert zk.create(f"{root}/x/y/z", b"deep", makepath=True) == f"{root}/x/y/z"
    assert zk.get(f"{root}/x/y/z")[0] == b"deep"
    assert zk.get(f"{root}/x")[0] == b""
    with pytest.raises(NodeExistsError):
        zk.create(f"{root}/x")
    with pytest.raises(NotEmptyError):
        zk.delete(f"{root}/x")
    zk.ensure_path(f"{root}/x/y/z")  # idempotent
    zk.delete(f"{root}/x", recursive=True)
    assert zk.exists(f"{root}/x") is None
    assert zk.get_children(root) == []


def test_sequential_numbering_counts_child_creations(zk: KazooClient, root: str) -> None:
    """Real ZooKeeper 3.8: the 10-digit suffix counts every child *creation* under the parent
    (sequential or not), deletions do not advance it, numbers are never reused; Stat.cversion
    on the other hand advances on creates AND deletes, so the two diverge after a delete."""
    first = zk.create(f"{root}/s-", sequence=True)
    assert re.fullmatch(rf"{root}/s-\d{{10}}", first)
    assert first.endswith("0000000000")
    second = zk.create(f"{root}/s-", sequence=True)
    assert second.endswith("0000000001")
    zk.create(f"{root}/plain")  # a plain child consumes number 2
    assert zk.exists(root).cversion == 3
    zk.delete(second)
    assert zk.exists(root).cversion == 4
    third = zk.create(f"{root}/s-", sequence=True)
    assert third.endswith("0000000003"), third  # not 1 (no reuse), not 4 (cversion)
    assert zk.exists(root).cversion == 5
    zk.delete(third)
    zk.delete(first)
    assert zk.exists(root).cversion == 7
    # A different prefix shares the same counter.
    other = zk.create(f"{root}/other", b"d", sequence=True)
    assert other == f"{root}/other0000000004"
    assert zk.get(other)[0] == b"d"
    # Failed creates consume nothing.
    with pytest.raises(NodeExistsError):
        zk.create(f"{root}/plain")
    assert zk.create(f"{root}/s-", sequence=True).endswith("0000000005")
    assert sorted(zk.get_children(root)) == ["other0000000004", "plain", "s-0000000005"]
    assert zk.exists(root).cversion == 9


def test_sequential_ephemeral(zk: KazooClient, root: str) -> None:
    path = zk.create(f"{root}/es-", ephemeral=True, sequence=True)
    assert path.endswith("0000000000")
    assert zk.exists(path).ephemeralOwner == zk.client_id[0]


def test_ephemeral_owner_and_no_children(zk: KazooClient, root: str) -> None:
    path = f"{root}/eph"
    zk.create(path, b"e", ephemeral=True)
    stat = zk.exists(path)
    assert stat.ephemeralOwner == zk.client_id[0]
    assert zk.exists(root).ephemeralOwner == 0
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{path}/child")


def test_ephemeral_deleted_on_close(
    zk: KazooClient, root: str, make_client: Callable[..., KazooClient]
) -> None:
    other = make_client()
    path = f"{root}/eph"
    other.create(path, ephemeral=True)
    zk.sync(path)  # another session's write: sync before reading it
    gone = threading.Event()
    assert zk.exists(path, watch=lambda event: gone.set()).ephemeralOwner == other.client_id[0]
    other.stop()  # closes the session explicitly
    assert gone.wait(5), "no watch event for the ephemeral deleted by CloseSession"
    wait_until(lambda: zk.exists(path) is None, 5, "ephemeral gone after CloseSession")


def test_system_zookeeper_node(zk: KazooClient) -> None:
    """Every ZooKeeper server exposes /zookeeper (with quota and config children) at the root."""
    assert "zookeeper" in zk.get_children("/")
    assert {"quota", "config"} <= set(zk.get_children("/zookeeper"))
    assert zk.exists("/").ephemeralOwner == 0


def test_ephemeral_deleted_on_session_expiry(zk: KazooClient, root: str, zk_target: Target) -> None:
    path = f"{root}/eph"
    script = textwrap.dedent(
        f"""
        import sys, time
        from kazoo.client import KazooClient
        c = KazooClient(hosts={zk_target.connect_string!r}, timeout=4)
        c.start(timeout=20)
        c.create({path!r}, b"x", ephemeral=True)
        print(c.client_id[0], flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        session_id = int(proc.stdout.readline())
        zk.sync(path)
        zk.sync(path)  # another session's write: sync before reading it (ZooKeeper's rule)
        assert zk.exists(path).ephemeralOwner == session_id
    finally:
        proc.kill()  # SIGKILL: no CloseSession, the server must expire the session
        proc.wait()
    killed = time.monotonic()
    assert zk.exists(path) is not None  # still there right after the kill
    wait_until(lambda: zk.exists(path) is None, 15, "expired ephemeral to be deleted")
    assert time.monotonic() - killed >= 3.0  # not before the 4 s session timeout (minus slack)


def test_stat_fields(zk: KazooClient, root: str) -> None:
    path = f"{root}/s"
    zk.create(path, b"hello")
    stat = zk.exists(path)
    assert stat.dataLength == 5
    assert stat.numChildren == 0
    assert stat.version == stat.cversion == stat.aversion == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ctime == stat.mtime
    assert stat.ctime > 1_500_000_000_000  # milliseconds since the epoch
    assert stat.ephemeralOwner == 0

    stat2 = zk.set(path, b"hi")
    assert stat2.version == 1
    assert stat2.czxid == stat.czxid
    assert stat2.mzxid > stat.mzxid
    assert stat2.dataLength == 2
    assert stat2.pzxid == stat.pzxid  # data changes do not touch pzxid

    zk.create(f"{path}/c1")
    stat3 = zk.exists(path)
    assert stat3.numChildren == 1
    assert stat3.cversion == 1
    assert stat3.pzxid > stat2.mzxid
    assert stat3.mzxid == stat2.mzxid  # child changes do not touch mzxid
    assert stat3.version == 1
    child = zk.exists(f"{path}/c1")
    assert stat3.pzxid == child.czxid

    zk.delete(f"{path}/c1")
    stat4 = zk.exists(path)
    assert stat4.numChildren == 0
    assert stat4.cversion == 2
    assert stat4.pzxid > stat3.pzxid

    root_stat = zk.exists(root)
    assert root_stat.numChildren == 1


def test_get_children_with_data(zk: KazooClient, root: str) -> None:
    for i in range(3):
        zk.create(f"{root}/c{i}", f"d{i}".encode())
    children, stat = zk.get_children(root, include_data=True)
    assert sorted(children) == ["c0", "c1", "c2"]
    assert stat.numChildren == 3
    assert stat.cversion == 3
    with pytest.raises(NoNodeError):
        zk.get_children(f"{root}/nope")


def test_transaction_commits_atomically(zk: KazooClient, root: str) -> None:
    zk.create(f"{root}/old", b"o")
    zk.create(f"{root}/upd", b"u")
    tx = zk.transaction()
    tx.create(f"{root}/new", b"n")
    tx.set_data(f"{root}/upd", b"u2", version=0)
    tx.delete(f"{root}/old")
    tx.check(f"{root}/upd", 1)  # sees the set_data above
    tx.create(f"{root}/tmp", b"t")  # created and deleted in the same transaction
    tx.delete(f"{root}/tmp")
    results = tx.commit()
    assert results[0] == f"{root}/new"
    assert results[1].version == 1
    assert results[2] is True
    assert results[3] is True
    assert results[4:] == [f"{root}/tmp", True]
    assert zk.exists(f"{root}/tmp") is None
    assert zk.get(f"{root}/new")[0] == b"n"
    assert zk.get(f"{root}/upd")[0] == b"u2"
    assert zk.exists(f"{root}/old") is None


def test_transaction_failure_applies_nothing(zk: KazooClient, root: str) -> None:
    zk.create(f"{root}/upd", b"u")
    before = zk.exists(root)
    tx = zk.transaction()
    tx.create(f"{root}/new", b"n")
    tx.set_data(f"{root}/upd", b"u2")
    tx.check(f"{root}/upd", 7)  # wrong version
    tx.delete(f"{root}/missing")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], RolledBackError)
    assert isinstance(results[2], BadVersionError)
    # Operations after the failing one are reported as runtime inconsistency by the server.
    assert len(results) == 4
    assert not isinstance(results[3], str | bool)
    assert zk.exists(f"{root}/new") is None
    assert zk.get(f"{root}/upd") == (b"u", zk.exists(f"{root}/upd"))
    assert zk.get(f"{root}/upd")[1].version == 0
    after = zk.exists(root)
    assert after.cversion == before.cversion
    assert after.pzxid == before.pzxid


def test_transaction_sequential_and_ephemeral(zk: KazooClient, root: str) -> None:
    tx = zk.transaction()
    tx.create(f"{root}/q-", b"1", sequence=True)
    tx.create(f"{root}/q-", b"2", sequence=True)
    tx.create(f"{root}/e", ephemeral=True)
    results = tx.commit()
    assert results[0] == f"{root}/q-0000000000"
    assert results[1] == f"{root}/q-0000000001"
    assert zk.exists(f"{root}/e").ephemeralOwner == zk.client_id[0]


def test_sync(zk: KazooClient, root: str, make_client: Callable[..., KazooClient]) -> None:
    other = make_client()
    zk.set(root, b"synced")
    assert other.sync(root) == root
    assert other.get(root)[0] == b"synced"


def test_digest_acl(zk: KazooClient, root: str, make_client: Callable[..., KazooClient]) -> None:
    owner = make_client(auth_data=[("digest", "alice:secret")])
    acl = make_digest_acl("alice", "secret", all=True)
    path = f"{root}/secret"
    owner.create(path, b"s", acl=[acl])
    zk.sync(path)

    with pytest.raises(NoAuthError):
        zk.get(path)
    with pytest.raises(NoAuthError):
        zk.set(path, b"x")
    assert zk.exists(path) is not None  # exists needs no permission
    assert owner.get(path)[0] == b"s"

    with pytest.raises(NoAuthError):
        zk.get_acls(path)  # 3.8: reading ACLs needs READ or ADMIN
    acls, stat = owner.get_acls(path)
    assert acls == [acl]
    assert stat.aversion == 0

    zk.add_auth("digest", "alice:secret")
    assert zk.get(path)[0] == b"s"
    wrong = make_client(auth_data=[("digest", "alice:wrong")])
    wrong.sync(path)
    with pytest.raises(NoAuthError):
        wrong.get(path)

    stat = owner.set_acls(path, OPEN_ACL_UNSAFE)
    assert stat.aversion == 1
    wrong.sync(path)  # the ACL change is another session's write
    assert wrong.get(path)[0] == b"s"
    assert wrong.get_acls(path)[0] == OPEN_ACL_UNSAFE

    # A new ACL takes access away from a session that had it.
    wrong.set_acls(path, [make_digest_acl("bob", "pw", read=True)])
    owner.sync(path)
    with pytest.raises(NoAuthError):
        owner.set(path, b"x")


def test_read_only_acl(zk: KazooClient, root: str, make_client: Callable[..., KazooClient]) -> None:
    from kazoo.security import ANYONE_ID_UNSAFE

    path = f"{root}/ro"
    zk.create(path, b"r", acl=[ACL(Permissions.READ, ANYONE_ID_UNSAFE)])
    other = make_client()
    other.sync(path)
    assert other.get(path)[0] == b"r"
    with pytest.raises(NoAuthError):
        other.set(path, b"w")
    with pytest.raises(NoAuthError):
        other.create(f"{path}/child")
    with pytest.raises(NoAuthError):
        other.set_acls(path, OPEN_ACL_UNSAFE)


def test_default_acl_is_open(zk: KazooClient, root: str) -> None:
    acls, _ = zk.get_acls(root)
    assert acls == OPEN_ACL_UNSAFE


def test_four_letter_words_and_version(zk: KazooClient, zk_target: Target) -> None:
    assert zk.command(b"ruok") == "imok"
    assert zk.command(b"isro") == "rw"
    srvr = zk.command(b"srvr")
    assert re.search(r"^Zxid: 0x[0-9a-f]+$", srvr, re.M), srvr
    assert re.search(r"^Mode: (leader|follower|standalone)$", srvr, re.M)
    assert "zk_znode_count\t" in zk.command(b"mntr")
    version = zk.server_version()
    assert isinstance(version, tuple) and len(version) >= 2
    assert all(isinstance(part, int) for part in version)
    assert version[:2] == (3, 8)


def test_dirs_srst_and_crst_do_what_they_say(zk: KazooClient, root: str) -> None:
    """`dirs` measures the data directory; `srst`/`crst` reset what they name (ZooKeeper's
    ServerStats.reset and the connections' counters)."""
    zk.create(f"{root}/d", b"x" * 1000)
    sizes = dict(line.split(": ") for line in zk.command(b"dirs").strip().splitlines())
    assert int(sizes["logdir_size"]) > 1000, sizes
    assert int(sizes["datadir_size"]) >= 0, sizes

    def packets() -> int:
        lines = zk.command(b"mntr").splitlines()
        mntr = dict(line.split("\t", 1) for line in lines if "\t" in line)
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


@pytest.mark.ours_only(
    "ZooKeeper 3.8 (reconfigEnabled=false, the default) answers reconfig with "
    "ZRECONFIGDISABLED (-123, kazoo's ReconfigDisabledError); ours answers ZUNIMPLEMENTED"
)
def test_reconfig_is_unimplemented(zk: KazooClient, root: str) -> None:
    with pytest.raises(UnimplementedError):
        zk.reconfig(joining=None, leaving="2", new_members=None)
    assert zk.create(f"{root}/alive", b"x") == f"{root}/alive"  # the session goes on
