"""Apache ZooKeeper's own command-line client (zkCli.sh) against the target, one command per
invocation (`zkCli.sh -server H:P cmd args...`). zkCli prints log noise and writes some results
to stderr ("Created /x", "Node does not exist: /x"), so both streams are searched line by line."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest

from tests.zk.conftest import Target

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"

pytestmark = pytest.mark.skipif(
    not (os.access(ZKCLI, os.X_OK) and os.path.exists("/usr/bin/java")),
    reason="zkCli.sh (Debian zookeeper package) or java is missing",
)


def zkcli(server: str, *args: str) -> tuple[int, list[str]]:
    result = subprocess.run(
        [ZKCLI, "-server", server, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    lines = (result.stdout + "\n" + result.stderr).splitlines()
    noise = ("SLF4J:", "WATCHER::", "WatchedEvent state:", "Connecting to ")
    lines = [line for line in lines if line.strip() and not line.startswith(noise)]
    return result.returncode, lines


def stat_fields(lines: list[str]) -> dict[str, str]:
    fields = {}
    for line in lines:
        m = re.fullmatch(r"(\w+) = (.*)", line.strip())
        if m:
            fields[m.group(1)] = m.group(2)
    return fields


def test_zkcli_scripted_session(zk_target: Target) -> None:
    server = zk_target.servers[0]
    path = f"/cli-{uuid.uuid4().hex[:8]}"

    rc, out = zkcli(server, "create", path, "hello")
    assert rc == 0 and f"Created {path}" in out, out

    rc, out = zkcli(server, "create", f"{path}/child", "c")
    assert rc == 0 and f"Created {path}/child" in out, out

    rc, out = zkcli(server, "ls", "/")
    assert rc == 0
    listing = [line for line in out if line.startswith("[")]
    assert listing, out
    names = listing[-1].strip("[]").split(", ")
    assert path[1:] in names
    assert "zookeeper" in names  # the system node every ZooKeeper exposes

    rc, out = zkcli(server, "ls", path)
    assert rc == 0 and "[child]" in out, out

    rc, out = zkcli(server, "get", path)
    assert rc == 0 and out[-1] == "hello", out

    rc, out = zkcli(server, "set", path, "world")
    assert rc == 0, out

    rc, out = zkcli(server, "get", "-s", path)
    assert rc == 0 and "world" in out, out
    fields = stat_fields(out)
    assert fields["dataVersion"] == "1"
    assert fields["dataLength"] == "5"
    assert fields["numChildren"] == "1"
    assert fields["cversion"] == "1"
    assert fields["ephemeralOwner"] == "0x0"
    assert re.fullmatch(r"0x[0-9a-f]+", fields["cZxid"])
    assert int(fields["mZxid"], 16) > int(fields["cZxid"], 16)
    assert int(fields["pZxid"], 16) > int(fields["cZxid"], 16)

    rc, out = zkcli(server, "stat", path)
    assert rc == 0
    assert stat_fields(out)["dataVersion"] == "1"
    assert "world" not in out

    rc, out = zkcli(server, "delete", path)
    assert rc != 0 and any("not empty" in line.lower() for line in out), out

    rc, out = zkcli(server, "deleteall", path)
    assert rc == 0, out

    rc, out = zkcli(server, "ls", path)
    assert rc != 0 and f"Node does not exist: {path}" in out, out

    rc, out = zkcli(server, "stat", path)
    assert rc != 0 and f"Node does not exist: {path}" in out, out


def test_zkcli_errors_and_ephemeral_sequential(zk_target: Target) -> None:
    server = zk_target.servers[-1]
    path = f"/cli-{uuid.uuid4().hex[:8]}"
    rc, out = zkcli(server, "create", path)
    assert rc == 0 and f"Created {path}" in out, out

    rc, out = zkcli(server, "create", path, "again")
    assert rc != 0 and f"Node already exists: {path}" in out, out

    rc, out = zkcli(server, "get", f"{path}/nope")
    assert rc != 0 and f"Node does not exist: {path}/nope" in out, out

    rc, out = zkcli(server, "create", "-s", f"{path}/seq-", "x")
    assert rc == 0 and f"Created {path}/seq-0000000000" in out, out

    # zkCli exits without closing its session: the ephemeral outlives the command and only
    # disappears when that session expires (so it is still listed here).
    rc, out = zkcli(server, "create", "-e", f"{path}/eph", "x")
    assert rc == 0 and f"Created {path}/eph" in out, out
    rc, out = zkcli(server, "ls", path)
    assert rc == 0 and "[eph, seq-0000000000]" in out, out
    rc, out = zkcli(server, "stat", f"{path}/eph")
    assert rc == 0 and stat_fields(out)["ephemeralOwner"] != "0x0", out

    rc, out = zkcli(server, "create", "-e", "-s", f"{path}/es-", "x")
    assert rc == 0 and f"Created {path}/es-0000000002" in out, out

    rc, out = zkcli(server, "set", "-v", "7", path, "x")
    assert rc != 0 and any("version No is not valid" in line for line in out), out

    rc, out = zkcli(server, "deleteall", path)
    assert rc == 0, out
