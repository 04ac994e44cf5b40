"""Apache ZooKeeper's own CLI (`zkCli.sh`, Debian's zookeeper package) against the quorum."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from controller.localquorum import LocalQuorum

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
pytestmark = [
    pytest.mark.skipif(
        not Path(ZKCLI).exists() or shutil.which("java") is None,
        reason="Debian's zookeeper package (zkCli.sh) is not installed",
    ),
    pytest.mark.timeout(180),
]


def zkcli(server: str, *command: str) -> str:
    result = subprocess.run(
        [ZKCLI, "-server", server, *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout + result.stderr


def test_scripted_zkcli_session(quorum: LocalQuorum) -> None:
    server = str(quorum.addresses[0])
    out = zkcli(server, "create", "/zkcli", "hello")
    assert "Created /zkcli" in out, out
    out = zkcli(server, "ls", "/")
    assert "zkcli" in out and "zookeeper" in out, out
    out = zkcli(server, "get", "/zkcli")
    assert "hello" in out, out
    out = zkcli(server, "set", "/zkcli", "world")
    out = zkcli(server, "get", "-s", "/zkcli")
    assert "world" in out and "dataVersion = 1" in out, out
    out = zkcli(server, "create", "-e", "-s", "/zkcli/seq-", "x")
    assert "Created /zkcli/seq-0000000000" in out, out
    out = zkcli(server, "delete", "/zkcli")
    assert "not empty" in out.lower() or "Node not empty" in out, out
    out = zkcli(server, "deleteall", "/zkcli")
    out = zkcli(server, "stat", "/zkcli")
    assert "Node does not exist" in out, out
