"""SIGKILL the leader under a kazoo workload: reconnect, same session, nothing acknowledged
lost, watches still fire."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException

from controller.localquorum import LocalQuorum


def test_leader_kill_mid_workload(tmp_path: Path) -> None:
    q = LocalQuorum(tmp_path / "q", log_level="INFO")
    with q:
        leader = q.wait_for_leader()["node_id"]
        zk = KazooClient(hosts=q.connect_string, timeout=6)
        zk.start(timeout=15)
        try:
            states: list[str] = []
            zk.add_listener(states.append)
            session = zk.client_id[0]
            zk.create("/eph", ephemeral=True)
            zk.create("/watched")
            fired = threading.Event()
            zk.get("/watched", watch=lambda event: fired.set())
            acked: list[int] = []
            stop = threading.Event()

            def writer() -> None:
                i = 0
                while not stop.is_set():
                    try:
                        zk.create(f"/k{i}", str(i).encode())
                        acked.append(i)
                    except KazooException:
                        pass  # connection loss: outcome unknown, like ZooKeeper
                    i += 1

            thread = threading.Thread(target=writer)
            thread.start()
            time.sleep(1.0)
            before = len(acked)
            q.kill(leader)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(acked) < before + 50:
                time.sleep(0.05)
            stop.set()
            thread.join(30)
            assert len(acked) >= before + 50, "writes did not resume after the leader died"
            assert zk.state == KazooState.CONNECTED
            assert zk.client_id[0] == session
            assert zk.exists("/eph") is not None
            zk.sync("/")
            missing = [i for i in acked if zk.exists(f"/k{i}") is None]
            assert missing == []
            other = KazooClient(hosts=q.connect_string, timeout=6)
            other.start(timeout=15)
            other.set("/watched", b"new")
            other.stop()
            assert fired.wait(10)
        finally:
            zk.stop()
        for i in q.ids:
            if i != leader:
                assert "Traceback" not in (tmp_path / "q" / f"node-{i}.log").read_text()


pytestmark = pytest.mark.timeout(120)
