"""Our trio client (`controller.client`) and the `kraft zk` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import trio

from controller.client import State, open_client
from controller.client.errors import BadVersionError, NodeExistsError, NoNodeError
from controller.localquorum import LocalQuorum
from controller.zk.constants import EventType


def run(coro_fn, *args):  # type: ignore[no-untyped-def]
    return trio.run(coro_fn, *args)


def test_client_crud_watches_and_errors(quorum: LocalQuorum) -> None:
    async def main() -> None:
        async with open_client(quorum.connect_string) as zk:
            assert zk.state == State.CONNECTED
            await zk.delete("/tc", recursive=True)
            assert await zk.create("/tc", b"v") == "/tc"
            with pytest.raises(NodeExistsError):
                await zk.create("/tc")
            data, stat = await zk.get("/tc")
            assert data == b"v" and stat.version == 0
            with pytest.raises(BadVersionError):
                await zk.set("/tc", b"w", version=7)
            with pytest.raises(NoNodeError):
                await zk.get("/tc/none")
            seq = await zk.create("/tc/s-", sequence=True, ephemeral=True)
            assert seq == "/tc/s-0000000000"
            fired = trio.Event()
            got = []
            await zk.get("/tc", watch=lambda ev: (got.append(ev), fired.set()))
            async with open_client(quorum.connect_string) as other:
                await other.set("/tc", b"w")
            with trio.fail_after(5):
                await fired.wait()
            assert got[0].type == EventType.NODE_DATA_CHANGED and got[0].path == "/tc"
            async with zk.watch("/tc") as events:
                await zk.create("/tc/child", b"")
                with trio.fail_after(5):
                    event = await events.receive()
                assert (event.type, event.path) == (EventType.NODE_CREATED, "/tc/child")
            assert sorted(await zk.get_children("/tc")) == ["child", "s-0000000000"]
            await zk.delete("/tc", recursive=True)
            assert await zk.exists("/tc") is None

    run(main)


def kraft(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args], capture_output=True, text=True, timeout=60
    )


def test_kraft_zk_commands(quorum: LocalQuorum) -> None:
    b = ["--bootstrap-server", quorum.connect_string]
    assert kraft("zk", "create", "/cli", "hello", *b).returncode == 0
    out = kraft("zk", "get", "/cli", *b, "--json")
    assert json.loads(out.stdout)["data"] == "hello"
    assert kraft("zk", "set", "/cli", "again", *b).returncode == 0
    out = kraft("zk", "stat", "/cli", *b)
    assert "dataVersion = 1" in out.stdout
    out = kraft("zk", "ls", "/", *b, "--json")
    assert "cli" in json.loads(out.stdout)["children"]
    out = kraft("zk", "create", "-s", "/cli/n-", *b)
    assert "Created /cli/n-0000000000" in out.stdout
    missing = kraft("zk", "get", "/nope", *b)
    assert missing.returncode == 1 and missing.stderr == "error: /nope: no such node\n"
    assert "Traceback" not in missing.stderr
    assert kraft("zk", "delete", "-r", "/cli", *b).returncode == 0
    shell = subprocess.run(
        [sys.executable, "-m", "controller", "zk", "shell", *b],
        input="create /sh x\nget /sh\ndelete /sh\nget /sh\nquit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Created /sh" in shell.stdout and "error: /sh: no such node" in shell.stderr
    status = kraft("quorum", "status", *b, "--json")
    data = json.loads(status.stdout)
    assert all(v["znodes"] is not None for v in data["voters"])
    assert all(v["sessions"] is not None for v in data["voters"])


pytestmark = pytest.mark.timeout(120)


def test_watches_survive_a_reconnect_through_set_watches(tmp_path: object) -> None:
    """Kill the controller the client is connected to, change the node meanwhile: after the
    client reconnects elsewhere, SetWatches fires the change it missed."""
    from pathlib import Path

    q = LocalQuorum(Path(str(tmp_path)) / "q")
    with q:
        q.wait_for_leader()

        async def main() -> None:
            async with open_client(q.connect_string, session_timeout_ms=10000) as zk:
                await zk.create("/sw", b"0")
                fired = trio.Event()
                events = []
                await zk.get("/sw", watch=lambda ev: (events.append(ev), fired.set()))
                assert zk.server is not None
                victim = q.client_ports.index(zk.server.port) + 1
                session = zk.session_id
                await trio.to_thread.run_sync(q.kill, victim)
                others = [a for i, a in enumerate(q.addresses, 1) if i != victim]
                async with open_client(others) as writer:
                    await writer.set("/sw", b"1")
                with trio.fail_after(20):
                    await fired.wait()
                assert zk.session_id == session
                assert events[0].type == EventType.NODE_DATA_CHANGED

        trio.run(main)
