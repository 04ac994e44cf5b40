"""`kraft quorum start` as a supervisor, with real processes on loopback: it survives the
death of a controller (reports it, keeps the others serving, restarts it), refuses ports
already in use before printing anything, prints the status only once the quorum is ready,
and stops every controller (by PID) only when it is itself stopped.

Also the `LocalQuorum` supervision API the runner is built on."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError

from controller.localquorum import LocalQuorum, QuorumError, free_ports, port_bind_error
from controller.node.admin_client import fetch_status
from controller.node.config import Address
from tests.node.helpers import status, wait_until

pytestmark = pytest.mark.timeout(180)

BOX = re.compile(r"[│┃|]")


# ---------------------------------------------------------------------- helpers


def consecutive_free_ports(count: int, avoid: set[int] | None = None) -> int:
    """First of `count` consecutive ports that a controller could listen on right now.

    Chosen below the OS's ephemeral range, so that no outgoing connection (of the
    controllers themselves or of concurrent tests) takes one of them as its source port.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, max(10001, low - count - 1))
        ports = range(base, base + count)
        clash = avoid is not None and not avoid.isdisjoint(ports)
        if not clash and all(port_bind_error(p) is None for p in ports):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


def process_running(pid: int) -> bool:
    """True if `pid` is a live (not zombie) controller process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and b"controller" in cmdline


def children_of(pid: int) -> set[int]:
    out: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.add(int(entry.name))
    return out


class Runner:
    """`python -m controller quorum start ...` with its output read line by line."""

    def __init__(self, data_dir: Path, base: int, raft: int, *extra: str) -> None:
        self.base = base
        self.servers = [Address("127.0.0.1", base + i) for i in range(3)]
        taken = {*range(base, base + 3), *range(raft, raft + 3)}
        admin = consecutive_free_ports(3, avoid=taken)  # not the default 8080-8082
        args = [
            sys.executable, "-m", "controller", "quorum", "start", "--controllers", "3",
            "--base-port", str(base), "--raft-base-port", str(raft),
            "--admin-base-port", str(admin), "--data-dir", str(data_dir), *extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8"
        )
        self.lines: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        self.controller_pids: set[int] = set()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self._cond:
                into.append(line.rstrip("\n"))
                for m in re.finditer(r"\bpid (\d+)", line):
                    self.controller_pids.add(int(m.group(1)))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first stdout line matching `pattern` (a regex), waiting for it if needed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := regex.search(line):
                        return m
                left = deadline - time.monotonic()
                ended = self.proc.poll() is not None and not self._threads[0].is_alive()
                if left <= 0 or ended:
                    raise AssertionError(
                        f"no line matching {pattern!r}; stdout:\n" + "\n".join(self.lines)
                        + "\nstderr:\n" + "\n".join(self.err)
                    )  # fmt: skip
                self._cond.wait(min(left, 0.2))

    def pids(self) -> dict[int, int]:
        """controller id -> PID as printed at start."""
        self.wait_for(r"quorum running")
        with self._cond:
            return {
                int(m.group(1)): int(m.group(2))
                for line in self.lines
                if (m := re.match(r"controller (\d+): pid (\d+),", line))
            }

    def printed_status(self) -> tuple[int, dict[int, tuple[str, int, int]]]:
        """HighWatermark and {node: (role, log end, lag)} of the status printed at start."""
        self.wait_for(r"quorum running")
        hw = int(self.wait_for(r"HighWatermark: (\d+)").group(1))
        rows: dict[int, tuple[str, int, int]] = {}
        columns: dict[str, int] = {}
        with self._cond:
            for line in self.lines:
                cells = [c.strip() for c in BOX.split(line) if c.strip()]
                if "NodeId" in cells and "Lag" in cells:
                    columns = {name: n for n, name in enumerate(cells)}
                elif columns and len(cells) == len(columns) and cells[0].isdigit():
                    role, log_end, lag = (
                        cells[columns[k]] for k in ("Role", "LogEndOffset", "Lag")
                    )
                    rows[int(cells[columns["NodeId"]])] = (role, int(log_end), int(lag))
        return hw, rows

    def leader(self) -> int:
        st: dict[str, Any] = {}

        def known() -> bool:
            st.update(trio.run(fetch_status, self.servers, 1.0))
            return bool(st["role"] == "leader")

        wait_until(known, timeout=30, what="a leader")
        return int(st["node_id"])

    def terminate(self, timeout: float = 30.0) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return code, "\n".join(self.lines)

    def cleanup(self) -> None:
        """Kill, by PID, the runner and every controller it started (even on failure)."""
        with self._cond:
            pids = set(self.controller_pids)
        if self.proc.poll() is None:
            pids |= children_of(self.proc.pid)
            self.proc.kill()
            self.proc.wait(10)
        for pid in pids:
            if process_running(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def ports() -> tuple[int, int]:
    base = consecutive_free_ports(3)
    raft = consecutive_free_ports(3, avoid=set(range(base, base + 3)))
    return base, raft


@contextlib.contextmanager
def runner(tmp_path: Path, ports: tuple[int, int], *extra: str) -> Iterator[Runner]:
    r = Runner(tmp_path / "data", *ports, *extra)
    try:
        yield r
    finally:
        r.cleanup()


def zk_write(hosts: str, path: str, timeout: float = 30.0) -> None:
    """Create `path` through kazoo, retrying while the quorum elects a leader."""
    zk = KazooClient(hosts=hosts, timeout=10)
    try:
        zk.start(timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                zk.create(path, b"written while a controller was down")
                return
            except NodeExistsError:
                return  # an earlier attempt went through
            except KazooException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        zk.stop()
        zk.close()


def zk_read(hosts: str, path: str) -> bytes:
    zk = KazooClient(hosts=hosts, timeout=10)
    try:
        zk.start(timeout=30)
        zk.sync(path)
        data, _ = zk.get(path)
        return bytes(data)
    finally:
        zk.stop()
        zk.close()


def hosts_of(r: Runner, nodes: list[int]) -> str:
    return ",".join(f"127.0.0.1:{r.base + i - 1}" for i in nodes)


# ---------------------------------------------------------------------- the runner


def test_runner_restarts_a_killed_leader_and_only_sigterm_stops_all(
    tmp_path: Path, ports: tuple[int, int]
) -> None:
    base, raft = ports
    with runner(tmp_path, ports) as r:
        pids = r.pids()
        assert sorted(pids) == [1, 2, 3]
        assert all(process_running(p) for p in pids.values())

        # The status printed at start comes after the leader committed its term's no-op and
        # every voter caught up.
        hw, rows = r.printed_status()
        assert hw > 0
        assert sorted(rows) == [1, 2, 3], rows
        assert [role for role, _, _ in rows.values()].count("leader") == 1
        assert all(lag == 0 and log_end == hw for _, log_end, lag in rows.values()), rows

        # A second runner on the same ports refuses before printing anything on stdout.
        second = subprocess.run(
            [sys.executable, "-m", "controller", "quorum", "start", "--base-port", str(base),
             "--raft-base-port", str(raft), "--data-dir", str(tmp_path / "second")],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert second.returncode == 1, second
        assert second.stdout == ""
        err = " ".join(second.stderr.split())
        assert f"error: port {base} (client port of controller 1) is already in use" in err
        assert "Traceback" not in second.stderr
        assert not (tmp_path / "second").exists()  # nothing was started
        assert all(process_running(p) for p in pids.values())

        # SIGKILL the leader's process: reported, the others keep serving, it comes back.
        leader = r.leader()
        os.kill(pids[leader], signal.SIGKILL)
        r.wait_for(rf"^controller {leader} exited \(killed by SIGKILL\); restarting in 1\.0 s$")
        survivors = [i for i in pids if i != leader]
        assert all(process_running(pids[i]) for i in survivors)
        zk_write(hosts_of(r, survivors), "/after-kill")

        new_pid = int(r.wait_for(rf"^controller {leader} restarted \(pid (\d+)\)$").group(1))
        assert new_pid != pids[leader] and process_running(new_pid)
        assert not process_running(pids[leader])
        back = r.servers[leader - 1]

        def caught_up() -> bool:
            lead = trio.run(fetch_status, r.servers, 1.0)
            member = next(v for v in lead["voters"] if v["id"] == leader)
            mine = status(back)
            return bool(
                lead["role"] == "leader"
                and member["lag"] == 0
                and mine["role"] == "follower"
                and mine["applied_index"] >= lead["commit_index"]
            )

        wait_until(caught_up, timeout=30, what=f"restarted controller {leader} to catch up")
        assert zk_read(f"127.0.0.1:{back.port}", "/after-kill").startswith(b"written")
        assert all(process_running(pids[i]) for i in survivors)
        assert r.proc.poll() is None

        # Only SIGTERM to the runner stops everything.
        code, out = r.terminate()
        assert code == 0, "\n".join(r.err)
        assert out.endswith("quorum stopped")
        assert "Traceback" not in "\n".join(r.err)
        for pid in [*pids.values(), new_pid]:
            assert not process_running(pid), pid


def test_no_restart_leaves_a_stopped_leader_down(tmp_path: Path, ports: tuple[int, int]) -> None:
    with runner(tmp_path, ports, "--no-restart") as r:
        pids = r.pids()
        r.wait_for(r"stays down \(--no-restart\)")
        leader = r.leader()
        os.kill(pids[leader], signal.SIGTERM)  # graceful: hands leadership over, exits 0
        r.wait_for(rf"^controller {leader} exited \(code 0\); restart disabled, leaving it down$")
        survivors = [i for i in pids if i != leader]
        zk_write(hosts_of(r, survivors), "/leader-down")
        time.sleep(2.0)  # longer than the default restart delay
        assert not any("restarted" in line for line in r.lines), r.lines
        assert not process_running(pids[leader])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", r.servers[leader - 1].port), timeout=2).close()
        assert all(process_running(pids[i]) for i in survivors)
        code, out = r.terminate()
        assert code == 0 and out.endswith("quorum stopped")
        assert not any(process_running(p) for p in pids.values())


def test_ports_in_use_are_refused_before_anything_starts(
    tmp_path: Path, ports: tuple[int, int]
) -> None:
    base, raft = ports
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", raft + 1))
        holder.listen()
        result = subprocess.run(
            [sys.executable, "-m", "controller", "quorum", "start", "--base-port", str(base),
             "--raft-base-port", str(raft), "--data-dir", str(tmp_path / "d")],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert result.returncode == 1, result
    assert result.stdout == ""
    err = " ".join(result.stderr.split())
    assert f"error: port {raft + 1} (raft port of controller 2) is already in use" in err
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------------- LocalQuorum API


def test_supervise_reports_and_restarts_and_stop_ends_it(tmp_path: Path) -> None:
    q = LocalQuorum(tmp_path / "q", restart_delay=0.3, fsync=False)
    assert q.supervise() == []  # not started
    with q:
        ready = q.wait_until_ready(30)
        assert ready["role"] == "leader"
        assert 0 < ready["commit_index"] == ready["last_index"]
        assert all(v["lag"] == 0 for v in ready["voters"])
        assert sorted(c["node_id"] for c in ready["controllers"]) == q.ids
        assert q.supervise() == []

        victim = next(i for i in q.ids if i != ready["node_id"])
        old_pid = q.pid(victim)
        assert old_pid is not None
        q.kill(victim)
        assert q.pid(victim) is None
        [exited] = q.supervise()
        assert (exited.kind, exited.node_id, exited.pid) == ("exited", victim, old_pid)
        assert exited.returncode == -signal.SIGKILL and exited.restart_in == 0.3
        assert str(exited) == f"controller {victim} exited (killed by SIGKILL); restarting in 0.3 s"
        assert set(q.pending_restarts()) == {victim}
        assert q.supervise() == []  # reported once; not due yet

        events: list[Any] = []

        def restarted_yet() -> bool:
            events.extend(q.supervise())
            return bool(events)

        wait_until(restarted_yet, what="restart")
        [restarted] = events
        assert (restarted.kind, restarted.node_id) == ("restarted", victim)
        assert restarted.pid == q.pid(victim) != old_pid
        assert q.pending_restarts() == {}
        # Ready again only once the restarted controller has caught up.
        again = q.wait_until_ready(30)
        member = next(v for v in again["voters"] if v["id"] == victim)
        assert member["lag"] == 0

        q.restart = False
        q.kill(victim)
        [down] = q.supervise()
        assert down.restart_in is None and "leaving it down" in str(down)
        assert q.pending_restarts() == {}
        # The quorum is ready without it (only live voters count).
        q.wait_until_ready(30)
    assert q.supervise() == []  # stopped: nothing is reported or restarted
    assert not any(q.alive(i) for i in q.ids)


def test_port_plan_is_validated() -> None:
    a, b, c = free_ports(3)
    with pytest.raises(ValueError, match=f"port {c} is both"):
        LocalQuorum(Path("unused"), controllers=2, client_ports=[a, c], raft_ports=[b, c])
    with pytest.raises(ValueError, match="out of range"):
        LocalQuorum(Path("unused"), controllers=1, client_ports=[70000], raft_ports=[a])
    q = LocalQuorum(Path("unused"), controllers=3)
    assert len(set(q.client_ports + q.raft_ports)) == 6
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", q.client_ports[2]))
        holder.listen()
        with pytest.raises(QuorumError, match=r"client port of controller 3\) is already"):
            q.check_ports()
    q.check_ports()
