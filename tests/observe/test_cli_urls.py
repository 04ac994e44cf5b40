"""`kraft quorum start` assigns and prints one admin URL per controller."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from controller.localquorum import free_ports
from tests.observe.helpers import get, wait_for

pytestmark = pytest.mark.timeout(60)


def test_quorum_start_prints_admin_urls(tmp_path: Path) -> None:
    client, raft, admin = free_ports(3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "quorum", "start", "--controllers", "1",
         "--base-port", str(client), "--raft-base-port", str(raft),
         "--admin-base-port", str(admin), "--fsync", "never", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        url = f"http://127.0.0.1:{admin}/"
        printed = re.compile(rf"admin\s+{re.escape(url)}")  # the line may be wrapped
        wait_for("the admin URL printed", lambda: printed.search(" ".join(lines)), 30)
        wait_for("healthz", lambda: get(url + "healthz")[0] == 200)
        wait_for("readyz", lambda: get(url + "readyz")[0] == 200)
        assert re.search(r"controller 1: pid \d+", " ".join(lines))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        time.sleep(0.1)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
