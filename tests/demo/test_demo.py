"""`kraft demo` end to end, as `make demo` runs it: real controller and broker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(200)


def test_demo_runs_every_step_within_its_deadline(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "controller", "demo", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=150)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output[-6000:]
    for step in (
        "broker failover",
        "controller failover",
        "preferred leaders restored",
        "controlled shutdown",
    ):
        assert f"{step}:" in output, output[-4000:]
    assert "every step met its deadline" in output
    assert "MISSED" not in output
    assert "Traceback" not in output
    # The brokers were told: one role-change line names the zxid it reflects.
    assert "leader of demo-" in output and "(zxid 0x" in output
    # Nothing is left running: every controller and broker of the demo has exited.
    leftover = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "data")], capture_output=True, text=True
    ).stdout.split()
    assert not leftover, f"processes left running: {leftover}"
