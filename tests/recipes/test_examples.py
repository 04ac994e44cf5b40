"""The examples, each run as a subprocess against the quorum: exit 0 means the invariants
they check as they run held (docs/recipes.md#examples)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from controller.localquorum import LocalQuorum

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, quorum: LocalQuorum, *args: str) -> str:
    """Run an example in its own process group: whatever it started is killed with it if
    it overruns."""
    command = [sys.executable, str(EXAMPLES / name), "-b", quorum.connect_string, *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=40)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group, if any
        proc.wait()
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{stdout}\n{stderr}"
    assert "Traceback" not in stderr
    return stdout


@pytest.mark.parametrize("strategy", ["ordering", "waiter"])
def test_dining_philosophers(quorum: LocalQuorum, strategy: str) -> None:
    out = run_example("dining_philosophers.py", quorum, "--strategy", strategy)
    assert "OK: no chopstick shared, every philosopher ate" in out
    for i in range(5):
        assert f"philosopher {i}: 3 meals" in out


def test_master_worker_survives_killing_the_master_and_a_worker(quorum: LocalQuorum) -> None:
    out = run_example("master_worker.py", quorum, "--deadline", "30")
    assert "OK: every task completed exactly once" in out
    assert "the leading master)" in out and "assigned tasks)" in out  # both kills happened
    assert " reassigned task-" in out  # the dead worker's tasks moved to live ones
    completed = [line for line in out.splitlines() if "] worker-" in line and " completed " in line]
    just_before_kill = [line for line in out.splitlines() if "just before it was killed" in line]
    assert len(completed) + len(just_before_kill) == 12


def test_config_watch_reacts_to_kraft_zk_set(quorum: LocalQuorum) -> None:
    out = run_example("config_watch.py", quorum, "--path", f"/examples/cw-{uuid.uuid4().hex[:8]}")
    assert "OK: every change applied live, in order" in out
    assert "HOLA" in out and "refused: " in out


def test_an_unreachable_quorum_fails_fast() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "dining_philosophers.py"), "-b", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: no controller reachable")


@pytest.mark.parametrize(
    ("name", "args", "named"),
    [
        ("dining_philosophers.py", ["-b", "garbage"], "--bootstrap-server"),
        ("dining_philosophers.py", ["--think", "-5"], "--think"),
        ("dining_philosophers.py", ["--meals", "0"], "--meals"),
        ("dining_philosophers.py", ["--root", "bad"], "--root"),
        ("master_worker.py", ["--tasks", "-1"], "--tasks"),
        ("master_worker.py", ["--work", "-1"], "--work"),
        ("config_watch.py", ["--path", "/a//b"], "--path"),
        ("config_watch.py", ["--path", "/"], "--path"),
        ("dining_philosophers.py", ["--root", "/zookeeper/x"], "--root"),
        ("dining_philosophers.py", ["--eat", "inf"], "--eat"),
        ("master_worker.py", ["--session-timeout-ms", "99999999999"], "--session-timeout-ms"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(name: str, args: list[str], named: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
