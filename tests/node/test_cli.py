"""The `kraft` command line, run as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from controller.localquorum import LocalQuorum, free_ports
from controller.node.admin_client import fetch_status
from tests.node.helpers import wait_until

pytestmark = pytest.mark.timeout(120)


def kraft(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_status_with_nothing_listening_fails_with_one_line() -> None:
    port = free_ports(1)[0]
    result = kraft("quorum", "status", "--bootstrap-server", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert "no controller reachable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["quorum", "status", "--bootstrap-server", "nonsense"],
        ["quorum", "status", "--no-such-flag"],
        ["controller", "run", "--node-id", "1"],
        ["quorum", "start", "--controllers", "0"],
    ],
)
def test_bad_arguments_exit_2_without_traceback(args: list[str]) -> None:
    result = kraft(*args)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr


def test_status_json_and_table(tmp_path: Path) -> None:
    with LocalQuorum(tmp_path / "q") as q:
        q.wait_for_leader()
        result = kraft("quorum", "status", "--bootstrap-server", q.connect_string, "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert set(data) >= {"leader_id", "leader_epoch", "high_watermark", "voters", "observers"}
        assert [v["node_id"] for v in data["voters"]] == [1, 2, 3]
        for v in data["voters"]:
            assert set(v) >= {
                "node_id",
                "client_address",
                "log_end_offset",
                "lag",
                "last_contact_ms",
            }
        table = kraft("quorum", "status", "-b", q.connect_string)
        assert "LeaderId" in table.stdout and "HighWatermark" in table.stdout


def test_data_dir_of_another_cluster_is_refused(tmp_path: Path) -> None:
    with LocalQuorum(tmp_path / "q", controllers=1, cluster_id="alpha") as q:
        q.wait_for_leader()
    other = LocalQuorum(tmp_path / "q", controllers=1, cluster_id="beta")
    result = subprocess.run(other.command(1), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "alpha" in result.stderr and "beta" in result.stderr
    assert "Traceback" not in result.stderr


def test_quorum_start_runs_until_sigterm_and_recovers(tmp_path: Path) -> None:
    from tests.node.test_quorum_runner import consecutive_free_ports

    # Three runs of free ports that do not overlap (independent picks once collided).
    base = consecutive_free_ports(3)
    raft = consecutive_free_ports(3, avoid={*range(base, base + 3)})
    admin = consecutive_free_ports(3, avoid={*range(base, base + 3), *range(raft, raft + 3)})
    args = [
        sys.executable, "-m", "controller", "quorum", "start", "--data-dir", str(tmp_path),
        "--base-port", str(base), "--raft-base-port", str(raft),
        "--admin-base-port", str(admin),
    ]  # fmt: skip
    bootstrap = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
    from controller.node.config import parse_bootstrap

    servers = parse_bootstrap(bootstrap)
    commits = [0]
    for _run in range(2):
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Each run commits at least its leader's no-op on top of the recovered log.
            wait_until(
                lambda: trio.run(fetch_status, servers)["commit_index"] > commits[-1],
                what="a commit above the previous run's",
            )
            commits.append(trio.run(fetch_status, servers)["commit_index"])
        finally:
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert bootstrap in out and "quorum stopped" in out
    # The second run recovered the first run's log (plus at least its own no-op).
    assert commits[2] > commits[1] >= 1


def test_a_sigkilled_quorum_start_leaves_no_orphan_controllers(tmp_path: Path) -> None:
    """SIGKILL gives the supervisor no chance to stop its controllers; each asked Linux
    (PR_SET_PDEATHSIG) for SIGTERM when it dies, so they exit gracefully on their own."""
    import re

    base, raft, admin = free_ports(3)
    args = [
        sys.executable, "-m", "controller", "quorum", "start", "--data-dir", str(tmp_path),
        "--base-port", str(base), "--raft-base-port", str(raft), "--admin-base-port", str(admin),
        "--controllers", "1", "--fsync", "never",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            found = re.search(r"controller \d+: pid (\d+)", line)
            if found:
                pids.append(int(found.group(1)))
            if "ready" in line or "leader" in line:
                break
        assert pids, "the supervisor printed no controller pid"
    finally:
        proc.kill()
        proc.wait(timeout=10)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie is gone too (its parent died; init reaps it soon).
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"

    deadline = time.monotonic() + 10
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if not gone(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"controllers {left} outlived their SIGKILLed supervisor"
