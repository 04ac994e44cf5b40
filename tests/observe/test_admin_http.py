"""The HTTP admin server of real controller processes: /metrics, /commands, health, the
console and its event stream."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from controller.localquorum import LocalQuorum
from controller.metadata import records as r
from tests.observe.helpers import (
    four_letter,
    get,
    get_json,
    metric,
    metrics,
    read_events,
    wait_for,
)
from tests.quorums import checked_quorum

pytestmark = pytest.mark.timeout(120)

REQUIRED = {
    "kafka_raft_current_leader",
    "kafka_raft_current_epoch",
    "kafka_raft_high_watermark",
    "kafka_raft_log_end_offset",
    "kraft_raft_applied_index",
    "kafka_raft_current_state",
    "kraft_raft_elections_started_total",
    "kraft_raft_leader_changes_total",
    "kraft_raft_fsyncs_total",
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "num_alive_connections",
    "outstanding_requests",
    "packets_received",
    "packets_sent",
    "kafka_controller_kafkacontroller_activecontrollercount",
    "kafka_controller_kafkacontroller_activebrokercount",
    "kafka_controller_kafkacontroller_globalpartitioncount",
    "kafka_controller_kafkacontroller_offlinepartitionscount",
    "kraft_under_replicated_partitions",
    "kraft_controller_epoch",
    "kraft_partition_leader_elections_total",
    "process_resident_memory_bytes",
    "process_open_fds",
}


@pytest.fixture(scope="module")
def quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalQuorum]:
    with checked_quorum(tmp_path_factory.mktemp("observe"), fsync=False) as q:
        q.wait_until_ready()
        yield q


@pytest.fixture
def zk(quorum: LocalQuorum) -> Iterator[KazooClient]:
    client = KazooClient(hosts=quorum.connect_string, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


def urls(q: LocalQuorum) -> list[str]:
    return [q.admin_url(i) for i in q.ids]


def leader_id(q: LocalQuorum) -> int:
    return int(q.wait_for_leader()["node_id"])


def test_metrics_parse_with_expected_names(quorum: LocalQuorum) -> None:
    for base in urls(quorum):
        samples = metrics(base)
        names = {name for name, _ in samples}
        missing = {n for n in REQUIRED if n not in names}
        assert not missing, (base, missing)
    lead = leader_id(quorum)
    leader = metrics(quorum.admin_url(lead))
    assert leader[("kafka_raft_current_leader", ())] == lead
    assert leader[("kafka_raft_current_state", (("state", "leader"),))] == 1
    assert leader[("kafka_controller_kafkacontroller_activecontrollercount", ())] == 1
    lag_peers = {
        dict(labels)["node_id"] for name, labels in leader if name == "kraft_raft_follower_lag"
    }
    assert lag_peers == {str(i) for i in quorum.ids if i != lead}
    for i in quorum.ids:
        if i != lead:
            assert metric(quorum.admin_url(i), "kafka_raft_current_leader") == lead
            assert (
                metric(
                    quorum.admin_url(i), "kafka_controller_kafkacontroller_activecontrollercount"
                )
                == 0
            )


def test_create_moves_znode_count_everywhere(quorum: LocalQuorum, zk: KazooClient) -> None:
    before = {base: metric(base, "znode_count") for base in urls(quorum)}
    zk.create(f"/observe-{uuid.uuid4().hex}", b"x")
    for base in urls(quorum):
        wait_for(
            f"znode_count to grow at {base}",
            lambda b=base: metric(b, "znode_count") == before[b] + 1,
        )
    ephemerals = {base: metric(base, "ephemerals_count") for base in urls(quorum)}
    zk.create(f"/observe-e-{uuid.uuid4().hex}", b"x", ephemeral=True)
    for base in urls(quorum):
        wait_for(
            "ephemerals_count to grow",
            lambda b=base: metric(b, "ephemerals_count") == ephemerals[b] + 1,
        )


def test_commands_mntr_agrees_with_four_letter_word(quorum: LocalQuorum, zk: KazooClient) -> None:
    zk.create(f"/mntr-{uuid.uuid4().hex}", b"x")
    stable = ("zk_server_state", "zk_version", "zk_znode_count", "zk_ephemerals_count",
              "zk_approximate_data_size", "zk_session_count", "zk_last_zxid")  # fmt: skip

    def differences(i: int) -> list[str]:
        """Keys on which the word and the command disagree (a write may land in between)."""
        text = four_letter(quorum.client_ports[i - 1], "mntr")
        words = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
        js = get_json(quorum.admin_url(i) + "commands/mntr")
        assert js["command"] == "mntr" and js["error"] is None
        assert set(js) - {"command", "error"} == {k.removeprefix("zk_") for k in words}
        wrong = []
        for key in stable:
            value = words[key]
            expected: object = value
            if value.startswith("0x"):
                expected = int(value, 16)
            elif value.isdigit():
                expected = int(value)
            if js[key.removeprefix("zk_")] != expected:
                wrong.append(f"{key}: {value} vs {js[key.removeprefix('zk_')]}")
        return wrong

    for i in quorum.ids:
        wait_for(f"mntr to agree on {i}", lambda i=i: not differences(i) or None, timeout=5)


def test_commands(quorum: LocalQuorum) -> None:
    lead = leader_id(quorum)
    base = quorum.admin_url(lead)
    listing = get_json(base + "commands")
    for name in ("srvr", "mntr", "conf", "cons", "envi", "wchs", "ruok", "leader", "quorum",
                 "brokers", "topics"):  # fmt: skip
        assert name in listing
        js = get_json(base + f"commands/{name}")
        assert js["command"] == name and js["error"] is None
    assert get_json(base + "commands/leader")["is_leader"] is True
    assert get_json(base + "commands/leader")["leader_id"] == lead
    assert get_json(base + "commands/srvr")["mode"] == "leader"
    assert get_json(base + "commands/conf")["serverId"] == lead
    quorum_js = get_json(base + "commands/quorum")
    assert [v["id"] for v in quorum_js["voters"]] == quorum.ids
    status, body, _ = get(base + "commands/nosuch")
    assert status == 404 and json.loads(body)["error"] == "Unknown command: nosuch"


def test_reset_commands_reset(quorum: LocalQuorum) -> None:
    """AdminServer's stat_reset / connection_stat_reset (aliases srst / crst) do what the
    four-letter words do."""
    base = quorum.admin_url(leader_id(quorum))
    get_json(base + "commands/mntr")
    assert get_json(base + "commands/stat_reset")["text"] == "Server stats reset."
    assert get_json(base + "commands/mntr")["packets_received"] <= 2  # a ping may land
    for name in ("srst", "crst", "connection_stat_reset"):
        js = get_json(base + f"commands/{name}")
        assert js["command"] == name and js["error"] is None


def test_health_and_readiness(quorum: LocalQuorum) -> None:
    for base in urls(quorum):
        status, body, _ = get(base + "healthz")
        assert status == 200, body
        status, body, _ = get(base + "readyz")
        assert status == 200, body
        assert json.loads(body)["ready"] is True


def test_console_files(quorum: LocalQuorum) -> None:
    base = quorum.admin_url(1)
    status, body, ctype = get(base)
    assert status == 200 and ctype.startswith("text/html") and b"kraft-controller" in body
    assert get(base + "console/console.js")[0] == 200
    assert get(base + "console/console.css")[0] == 200
    assert get(base + "console/nothing.txt")[0] == 404
    state = get_json(base + "api/state")
    assert state["answered_by"]["node_id"] == 1
    assert state["answered_by"]["admin_url"].endswith(f":{quorum.admin_ports[0]}/")


def test_console_state_on_a_follower(quorum: LocalQuorum) -> None:
    lead = leader_id(quorum)
    follower = next(i for i in quorum.ids if i != lead)
    state = get_json(quorum.admin_url(follower) + "api/state")
    assert state["answered_by"]["node_id"] == follower
    assert state["answered_by"]["role"] == "follower"
    q = state["quorum"]
    assert q["leader_id"] == lead and q["node_id"] == follower
    assert q["view_from"] == lead  # lags and last contact come from the leader
    assert all(v["lag"] is not None for v in q["voters"])
    assert {"brokers", "topics", "broker_controller"} <= set(state)


def _register(zk: KazooClient, broker_id: int) -> None:
    registration = r.BrokerRegistration(
        host="127.0.0.1",
        port=9000 + broker_id,
        endpoints=[f"PLAINTEXT://127.0.0.1:{9000 + broker_id}"],
        rack=f"r{broker_id}",
        timestamp=str(int(time.time() * 1000)),
        incarnation_id=uuid.uuid4().hex,
    )
    zk.create(r.broker_path(broker_id), r.encode(registration), ephemeral=True, makepath=True)


def test_broker_death_moves_live_brokers_and_elections(quorum: LocalQuorum) -> None:
    lead = leader_id(quorum)
    follower = next(i for i in quorum.ids if i != lead)
    clients = []
    for broker_id in (1, 2):
        client = KazooClient(hosts=quorum.connect_string, timeout=10)
        client.start(timeout=15)
        _register(client, broker_id)
        clients.append(client)
    try:
        admin = KazooClient(hosts=quorum.connect_string, timeout=10)
        admin.start(timeout=15)
        assignment = r.TopicAssignment(partitions={"0": [1, 2]}, topic_id=uuid.uuid4().hex)
        admin.create(r.topic_path("obs"), r.encode(assignment), makepath=True)
        admin.stop()
        admin.close()
        bases = urls(quorum)
        live = "kafka_controller_kafkacontroller_activebrokercount"
        for base in bases:
            wait_for("two live brokers", lambda b=base: metric(b, live) == 2)

        def partition(base: str) -> dict | None:
            topics = get_json(base + "commands/topics")["topics"]
            parts = [p for t in topics if t["name"] == "obs" for p in t["partitions"]]
            return parts[0] if parts and parts[0]["leader"] != -1 else None

        first = wait_for("a leader for obs-0", lambda: partition(quorum.admin_url(follower)))
        assert first["leader"] == 1 and first["isr"] == [1, 2]
        failures = metric(quorum.admin_url(follower), "kraft_partition_leader_elections_total",
                          cause="broker_failure")  # fmt: skip
        seen = read_events(
            quorum.admin_url(follower) + "api/events", lambda e: e["kind"] == "leader_change"
        )
        seq = max(e["seq"] for e in seen)
        clients[0].stop()  # closes broker 1's session: its registration goes
        clients[0].close()
        for base in bases:
            wait_for("one live broker", lambda b=base: metric(b, live) == 1)
        # A follower's standby image follows: the console's data and counters move there too.
        moved = wait_for(
            "obs-0 led by broker 2",
            lambda: (p := partition(quorum.admin_url(follower))) and p["leader"] == 2 and p,
        )
        assert moved["leader_epoch"] > first["leader_epoch"]
        wait_for("a broker_failure election", lambda: metric(
            quorum.admin_url(follower), "kraft_partition_leader_elections_total",
            cause="broker_failure") == failures + 1)  # fmt: skip
        events = read_events(
            quorum.admin_url(follower) + f"api/events?after={seq}",
            lambda e: e["kind"] == "leader_change" and e.get("leader") == 2,
        )
        kinds = [e["kind"] for e in events]
        assert "broker_death" in kinds, events
        assert all(e["seq"] > seq for e in events)
        change = events[-1]
        assert change["topic"] == "obs" and change["cause"] == "broker_failure"
        assert change["leader_epoch"] == moved["leader_epoch"]
        under = wait_for("obs-0 under-replicated", lambda: metric(
            quorum.admin_url(lead), "kraft_under_replicated_partitions"))  # fmt: skip
        assert under == 1
        listed = get_json(quorum.admin_url(follower) + "commands/brokers")
        assert [b["id"] for b in listed["brokers"]] == [2]
        assert listed["offline_brokers"] == [1]
    finally:
        for client in clients:
            client.stop()
            client.close()


def test_cons_and_wchs_see_a_client(quorum: LocalQuorum) -> None:
    client = KazooClient(hosts=f"127.0.0.1:{quorum.client_ports[0]}", timeout=10)
    client.start(timeout=15)
    try:
        path = f"/watched-{uuid.uuid4().hex}"
        client.exists(path, watch=lambda event: None)
        base = quorum.admin_url(1)
        conns = get_json(base + "commands/cons")["connections"]
        sids = {c["sid"] for c in conns}
        assert client.client_id[0] in sids, (client.client_id, conns)
        wchs = get_json(base + "commands/wchs")
        assert wchs["num_total_watches"] >= 1 and wchs["num_paths"] >= 1
        assert path in get_json(base + "commands/wchp")["path_watches"]
        assert metric(base, "watch_count") >= 1
        assert metric(base, "num_alive_connections") >= 1
    finally:
        client.stop()
        client.close()
