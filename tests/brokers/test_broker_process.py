"""The demo broker and the `kraft topics|brokers` commands as real processes against a real
quorum: registration, duplicate ids, shutdown, status requests, CLI shapes and errors."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest
from kazoo.client import KazooClient

from controller.localquorum import free_ports
from tests.brokers.helpers import BrokerProc, ask_status, kraft, kraft_json, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_broker_registers_ephemeral_znode_with_czxid_epoch(bootstrap: str, zk: KazooClient) -> None:
    broker = BrokerProc(11, bootstrap, "--rack", "r1")
    try:
        epoch = broker.wait_registered()
        data, stat = zk.get("/brokers/ids/11")
        doc = json.loads(data)
        port = broker.port
        assert port != 0  # --port 0: the OS chose it, the registration carries it
        assert doc == {
            "version": 5,
            "host": "127.0.0.1",
            "port": port,
            "endpoints": [f"PLAINTEXT://127.0.0.1:{port}"],
            "rack": "r1",
            "jmx_port": -1,
            "timestamp": doc["timestamp"],
            "incarnation_id": doc["incarnation_id"],
        }
        assert doc["timestamp"].isdigit() and abs(int(doc["timestamp"]) / 1000 - time.time()) < 60
        assert len(doc["incarnation_id"]) == 22
        assert stat.ephemeralOwner != 0
        assert stat.czxid == epoch  # the broker epoch (KIP-380)
        assert stat.version == 1  # Kafka's create + setData(version 0), in one multi
        assert zk.exists("/admin/controlled_shutdown") is not None
    finally:
        broker.kill()


def test_status_request_answers_one_json_line(bootstrap: str) -> None:
    broker = BrokerProc(12, bootstrap, "--rack", "r2")
    try:
        epoch = broker.wait_registered()
        status = ask_status(broker.port)
        assert status["broker_id"] == 12 and status["epoch"] == epoch and status["rack"] == "r2"
        assert status["state"] == "running"
        assert re.fullmatch(r"0x[0-9a-f]+", status["metadata_zxid"])
        assert isinstance(status["leader_of"], list) and isinstance(status["follower_of"], list)
        assert isinstance(status["partitions"], dict)
        # The cache learns its own registration by watch, just after registering.
        wait_until(lambda: 12 in ask_status(broker.port)["live_brokers"], 10, "own registration")
        assert "error" in ask_status(broker.port, b'{"request":"nope"}\n')
        assert "error" in ask_status(broker.port, b"garbage\n")
    finally:
        broker.kill()


def test_duplicate_broker_id_is_refused_with_one_line(bootstrap: str, zk: KazooClient) -> None:
    first = BrokerProc(13, bootstrap)
    second: BrokerProc | None = None
    try:
        first.wait_registered()
        second = BrokerProc(13, bootstrap, "--registration-timeout-ms", "1000")
        assert second.proc.wait(30) == 1
        time.sleep(0.2)
        errors = [line for line in second.err if line.strip()]
        assert len(errors) == 1, second.err
        assert re.fullmatch(
            r"error: broker 13: DuplicateBrokerRegistration: broker id 13 is registered by "
            r"another live session \(0x[0-9a-f]+\)",
            errors[0],
        ), errors
        waiting = [line for line in second.out if "waiting up to 1 s" in line]
        assert len(waiting) == 1, second.out  # said once
        # The first broker is untouched.
        data, _ = zk.get("/brokers/ids/13")
        assert json.loads(data)["port"] == first.port
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_sigterm_stops_cleanly_and_removes_registration(bootstrap: str, zk: KazooClient) -> None:
    broker = BrokerProc(14, bootstrap, via_kraft=True)  # `kraft broker run`, same flags
    try:
        broker.wait_registered()
        assert zk.exists("/brokers/ids/14") is not None
        assert broker.stop(signal.SIGTERM) == 0
        assert "broker 14: controlled shutdown: moving 0 leaderships away" in broker.out
        assert broker.out[-1] == "broker 14: stopped"
        assert not [line for line in broker.err if line.strip()], broker.err
        # The session was closed before exiting: its ephemerals are gone at once.
        assert zk.exists("/brokers/ids/14") is None
        assert zk.exists("/admin/controlled_shutdown/14") is None
    finally:
        broker.kill()


def test_restart_after_sigkill_waits_for_the_old_session(bootstrap: str, zk: KazooClient) -> None:
    old = BrokerProc(15, bootstrap)
    new: BrokerProc | None = None
    try:
        old_epoch = old.wait_registered()
        old.kill()  # SIGKILL: nothing cleaned up; the session expires on the quorum
        new = BrokerProc(15, bootstrap)  # registration timeout: 4 s session + 2 s
        new.wait_for(r"broker 15: broker id 15 is registered by another live session")
        new_epoch = new.wait_registered(timeout=30)
        assert new_epoch > old_epoch
        _, stat = zk.get("/brokers/ids/15")
        assert stat.czxid == new_epoch
    finally:
        old.kill()
        if new is not None:
            new.kill()


def test_brokers_list_json_shape(bootstrap: str, zk: KazooClient) -> None:
    a = BrokerProc(16, bootstrap, "--rack", "rA")
    b = BrokerProc(17, bootstrap)
    try:
        epochs = {16: a.wait_registered(), 17: b.wait_registered()}
        data = kraft_json("brokers", "list", "-b", bootstrap)
        assert set(data) == {"controller", "brokers"}
        controller = data["controller"]
        if controller is not None:  # written by the active controller
            assert set(controller) == {"id", "epoch"} and controller["epoch"] >= 1
        ours = {e["id"]: e for e in data["brokers"] if e["id"] in epochs}
        assert ours[16] == {
            "id": 16, "rack": "rA", "host": "127.0.0.1", "port": a.port, "epoch": epochs[16],
            "state": "live", "leader_of": 0,
        }  # fmt: skip
        assert ours[17]["rack"] is None and ours[17]["epoch"] == epochs[17]
        table = kraft("brokers", "list", "-b", bootstrap)
        assert table.returncode == 0 and "State" in table.stdout and "live" in table.stdout
        assert "controller" in table.stdout
    finally:
        a.kill()
        b.kill()


def one_error_line(result: object) -> str:
    stderr = getattr(result, "stderr", "")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_topics_create_validation_errors(bootstrap: str) -> None:
    broker = BrokerProc(18, bootstrap)
    try:
        broker.wait_registered()
        bad = kraft("topics", "create", "bad name!", "-b", bootstrap)
        assert bad.returncode == 2
        assert one_error_line(bad).startswith("error: topic 'bad name!': topic name contains")
        config = kraft("topics", "create", "cfg", "--config", "novalue", "-b", bootstrap)
        assert config.returncode == 2 and "error: topic 'cfg'" in one_error_line(config)
        zero = kraft("topics", "create", "zero", "--partitions", "0", "-b", bootstrap)
        assert zero.returncode == 2 and "Traceback" not in zero.stderr
        big = kraft("topics", "create", "big", "--replication-factor", "50", "-b", bootstrap)
        assert big.returncode == 1
        line = one_error_line(big)
        assert line.startswith("error: topic 'big': replication factor 50 is larger than")
        assert "INVALID_REPLICATION_FACTOR" in line
        ok = kraft("topics", "create", "dup", "--no-wait", "-b", bootstrap)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "created topic dup with 1 partition, replication factor 1"
        dup = kraft("topics", "create", "dup", "-b", bootstrap)
        assert dup.returncode == 1
        assert one_error_line(dup) == "error: topic 'dup': already exists (TOPIC_ALREADY_EXISTS)"
        missing = kraft("topics", "describe", "nope", "-b", bootstrap)
        assert missing.returncode == 1 and "topic 'nope': does not exist" in one_error_line(missing)
        usage = kraft("topics", "create", "x", "-b", "nonsense")
        assert usage.returncode == 2 and "Traceback" not in usage.stderr
    finally:
        broker.kill()


def test_nothing_listening_is_one_line_exit_1() -> None:
    port = free_ports(1)[0]
    began = time.monotonic()
    result = kraft("brokers", "list", "-b", f"127.0.0.1:{port}")
    took = time.monotonic() - began
    assert result.returncode == 1
    # Same wording as `kraft quorum status` and `kraft zk`, and as fast (a refused port).
    assert one_error_line(result).startswith(f"error: no controller reachable (127.0.0.1:{port}")
    assert took < 5, f"took {took:.1f} s"
