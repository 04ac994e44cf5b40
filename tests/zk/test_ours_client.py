"""Our own tools against our quorum: the trio client (`controller.client`), the `kraft zk`
command line and `kraft quorum status`. Not ZooKeeper behaviour, so not run against real
ZooKeeper."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import trio

from controller.client import State, open_client
from controller.client.errors import BadVersionError, NodeExistsError, NoNodeError
from controller.localquorum import LocalQuorum
from controller.zk.constants import EventType
from tests.zk.conftest import Target

pytestmark = pytest.mark.ours_only("our trio client and `kraft` CLI")


def test_client_crud_watches_and_errors(quorum: LocalQuorum) -> None:
    base = f"/tc-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with open_client(quorum.connect_string) as zk:
            assert zk.state == State.CONNECTED
            assert await zk.create(base, b"v") == base
            with pytest.raises(NodeExistsError):
                await zk.create(base)
            data, stat = await zk.get(base)
            assert data == b"v" and stat.version == 0
            with pytest.raises(BadVersionError):
                await zk.set(base, b"w", version=7)
            with pytest.raises(NoNodeError):
                await zk.get(f"{base}/none")
            seq = await zk.create(f"{base}/s-", sequence=True, ephemeral=True)
            assert seq == f"{base}/s-0000000000"
            fired = trio.Event()
            got = []
            await zk.get(base, watch=lambda ev: (got.append(ev), fired.set()))
            async with open_client(quorum.connect_string) as other:
                await other.set(base, b"w")
            with trio.fail_after(5):
                await fired.wait()
            assert got[0].type == EventType.NODE_DATA_CHANGED and got[0].path == base
            async with zk.watch(base) as events:
                await zk.create(f"{base}/child", b"")
                with trio.fail_after(5):
                    event = await events.receive()
                assert (event.type, event.path) == (EventType.NODE_CREATED, f"{base}/child")
            assert sorted(await zk.get_children(base)) == ["child", "s-0000000000"]
            await zk.delete(base, recursive=True)
            assert await zk.exists(base) is None

    trio.run(main)


def kraft(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args], capture_output=True, text=True, timeout=60
    )


def test_kraft_zk_commands(quorum: LocalQuorum) -> None:
    b = ["--bootstrap-server", quorum.connect_string]
    path = f"/cli-{uuid.uuid4().hex[:8]}"
    assert kraft("zk", "create", path, "hello", *b).returncode == 0
    out = kraft("zk", "get", path, *b, "--json")
    assert json.loads(out.stdout)["data"] == "hello"
    assert kraft("zk", "set", path, "again", *b).returncode == 0
    out = kraft("zk", "stat", path, *b)
    assert "dataVersion = 1" in out.stdout
    out = kraft("zk", "ls", "/", *b, "--json")
    assert path[1:] in json.loads(out.stdout)["children"]
    out = kraft("zk", "create", "-s", f"{path}/n-", *b)
    assert f"Created {path}/n-0000000000" in out.stdout
    missing = kraft("zk", "get", "/nope", *b)
    assert missing.returncode == 1 and missing.stderr == "error: /nope: no such node\n"
    assert "Traceback" not in missing.stderr
    assert kraft("zk", "delete", "-r", path, *b).returncode == 0
    sh = f"{path}-sh"
    shell = subprocess.run(
        [sys.executable, "-m", "controller", "zk", "shell", *b],
        input=f"create {sh} x\nget {sh}\ndelete {sh}\nget {sh}\nquit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"Created {sh}" in shell.stdout and f"error: {sh}: no such node" in shell.stderr
    status = kraft("quorum", "status", *b, "--json")
    data = json.loads(status.stdout)
    assert all(v["znodes"] is not None for v in data["voters"])
    assert all(v["sessions"] is not None for v in data["voters"])


@pytest.fixture
def restore(zk_target: Target) -> Iterator[Target]:
    yield zk_target
    zk_target.restart_all_dead()


def test_watches_survive_a_reconnect_through_set_watches(
    restore: Target, quorum: LocalQuorum
) -> None:
    """Kill the controller the client is connected to, change the node meanwhile: after the
    client reconnects elsewhere, SetWatches fires the change it missed."""
    path = f"/sw-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with open_client(quorum.connect_string, session_timeout_ms=10000) as zk:
            await zk.create(path, b"0")
            fired = trio.Event()
            events = []
            await zk.get(path, watch=lambda ev: (events.append(ev), fired.set()))
            assert zk.server is not None
            victim = quorum.client_ports.index(zk.server.port) + 1
            session = zk.session_id
            await trio.to_thread.run_sync(quorum.kill, victim)
            others = [a for i, a in enumerate(quorum.addresses, 1) if i != victim]
            async with open_client(others) as writer:
                await writer.set(path, b"1")
            with trio.fail_after(20):
                await fired.wait()
            assert zk.session_id == session
            assert events[0].type == EventType.NODE_DATA_CHANGED

    trio.run(main)


def test_kraft_zk_get_keeps_null_and_binary_data(quorum: LocalQuorum) -> None:
    """`kraft zk create /p` without data creates a null buffer, as zkCli does; `get` prints
    "null" for it, and `--json` carries any data's exact bytes in base64."""
    import base64

    from kazoo.client import KazooClient

    b = ["--bootstrap-server", quorum.connect_string]
    path = f"/cli-null-{uuid.uuid4().hex[:8]}"
    assert kraft("zk", "create", path, *b).returncode == 0
    assert kraft("zk", "get", path, *b).stdout == "null\n"
    assert json.loads(kraft("zk", "get", path, *b, "--json").stdout)["data"] is None
    zk = KazooClient(hosts=quorum.connect_string)
    zk.start(timeout=15)
    try:
        assert zk.get(path)[0] is None
        zk.set(path, b"\xff\x00bin")
    finally:
        zk.stop()
        zk.close()
    got = json.loads(kraft("zk", "get", path, *b, "--json").stdout)
    assert base64.b64decode(got["data_base64"]) == b"\xff\x00bin"
    assert kraft("zk", "delete", path, *b).returncode == 0
