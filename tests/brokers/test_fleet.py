"""Brokers, CLI and the active controller together: leadership lines, controlled shutdown,
preferred election, offline partitions, topic deletion (real processes)."""

from __future__ import annotations

import importlib.util
import json
import signal
import time

import pytest
from kazoo.client import KazooClient

from controller.localquorum import LocalQuorum
from tests.brokers.helpers import BrokerProc, ask_status, kraft, kraft_json, wait_until

ACTIVE = any(
    importlib.util.find_spec(name)
    for name in ("controller.metadata.active", "controller.service.broker_controller")
)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not ACTIVE, reason="active controller not landed"),
]


def states(zk: KazooClient, topic: str) -> dict[int, dict[str, object]]:
    out = {}
    base = f"/brokers/topics/{topic}/partitions"
    for p in zk.get_children(base) if zk.exists(base) else []:
        if zk.exists(f"{base}/{p}/state"):
            out[int(p)] = json.loads(zk.get(f"{base}/{p}/state")[0])
    return out


def test_topic_lifecycle_with_a_broker_fleet(bootstrap: str, zk: KazooClient) -> None:
    ids = (21, 22, 23)
    fleet = {i: BrokerProc(i, bootstrap, "--rack", f"r{i}") for i in ids}
    restarted: BrokerProc | None = None
    try:
        for b in fleet.values():
            b.wait_registered()
        # Brokers SIGKILLed by earlier tests stay registered until their sessions expire;
        # placement must see exactly this fleet.
        wait_until(
            lambda: sorted(int(c) for c in zk.get_children("/brokers/ids")) == list(ids),
            what="only this fleet registered",
        )
        data = kraft_json("topics", "create", "life", "--partitions", "3",
                          "--replication-factor", "3", "-b", bootstrap)  # fmt: skip
        assert data["created"] == "life" and data["ready"] is True
        [topic] = data["topics"]
        assert topic["partition_count"] == 3 and topic["replication_factor"] == 3
        leaders = {}
        for p in topic["partitions"]:
            assert set(p["replicas"]) == set(ids) and sorted(p["isr"]) == sorted(p["replicas"])
            assert p["leader"] == p["replicas"][0] and p["leader_epoch"] == 0
            assert not (p["under_replicated"] or p["offline"] or p["pending"])
            leaders[p["partition"]] = p["leader"]
        # Every broker prints its role for every partition.
        for p, leader in leaders.items():
            fleet[leader].wait_for(rf"broker {leader}: leader of life-{p} at epoch 0 \(zxid 0x")
            for other in set(ids) - {leader}:
                fleet[other].wait_for(
                    rf"broker {other}: follower of life-{p} \(leader {leader}, epoch 0\)"
                )
        victim = leaders[0]
        led = sorted(p for p, b in leaders.items() if b == victim)
        status = ask_status(fleet[victim].port)
        assert status["leader_of"] == [f"life-{p}" for p in led]

        # Controlled shutdown moves the victim's leaderships away before it stops.
        noun = "leadership" if len(led) == 1 else "leaderships"
        assert fleet[victim].stop(signal.SIGTERM) == 0
        assert f"broker {victim}: controlled shutdown: moving {len(led)} {noun} away" in (
            fleet[victim].out
        )
        assert f"broker {victim}: controlled shutdown complete: leader of nothing" in (
            fleet[victim].out
        )
        assert fleet[victim].out[-1] == f"broker {victim}: stopped"
        after = kraft_json("topics", "describe", "life", "-b", bootstrap)["topics"][0]
        for p in after["partitions"]:
            assert p["leader"] != victim and victim not in p["isr"]
            assert p["under_replicated"] and not p["offline"]
        under = kraft_json("topics", "describe", "--under-replicated", "-b", bootstrap)
        assert [t["name"] for t in under["topics"] if t["name"] == "life"] == ["life"]
        unavailable = kraft_json("topics", "describe", "life", "--unavailable", "-b", bootstrap)
        assert unavailable == {"topics": []}

        # The broker comes back, rejoins the ISRs; a preferred election restores leadership.
        restarted = fleet[victim] = BrokerProc(victim, bootstrap, "--rack", f"r{victim}")
        restarted.wait_registered()
        wait_until(
            lambda: all(len(s["isr"]) == 3 for s in states(zk, "life").values()),
            what="the restarted broker back in every ISR",
        )
        elected = kraft_json("partitions", "elect-leaders", "--topic", "life", "-b", bootstrap)
        assert [e["preferred"] for e in elected["partitions"]] == [True, True, True]
        assert {e["partition"]: e["leader"] for e in elected["partitions"]} == leaders
        restarted.wait_for(rf"broker {victim}: leader of life-0 at epoch \d+")
        listing = kraft_json("brokers", "list", "-b", bootstrap)
        counts = {b["id"]: b["leader_of"] for b in listing["brokers"] if b["id"] in ids}
        assert counts[victim] == len(led)

        deleted = kraft("topics", "delete", "life", "-b", bootstrap)
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout.splitlines() == [
            "topic 'life' marked for deletion",
            "deleted topic life",
        ]
        for i in ids:
            fleet[i].wait_for(rf"broker {i}: no longer a replica of life-0 \(zxid 0x")
    finally:
        for b in fleet.values():
            b.kill()


def test_killed_broker_makes_its_partitions_offline(bootstrap: str, zk: KazooClient) -> None:
    broker = BrokerProc(31, bootstrap)
    try:
        broker.wait_registered()
        wait_until(lambda: zk.get_children("/brokers/ids") == ["31"], what="only broker 31 live")
        created = kraft("topics", "create", "solo", "--partitions", "2", "-b", bootstrap)
        assert created.returncode == 0, created.stderr
        data = kraft_json("topics", "describe", "solo", "-b", bootstrap)
        ours = [p["partition"] for p in data["topics"][0]["partitions"] if p["replicas"] == [31]]
        assert ours == [0, 1]
        broker.kill()  # SIGKILL: the controller learns of it when the session expires
        wait_until(
            lambda: all(states(zk, "solo")[p]["leader"] == -1 for p in ours),
            timeout=30,
            what="leaderless partitions after the broker's session expired",
        )
        offline = kraft_json("topics", "describe", "solo", "--unavailable", "-b", bootstrap)
        rows = {p["partition"]: p for p in offline["topics"][0]["partitions"]}
        for p in ours:
            assert rows[p]["leader"] == -1 and rows[p]["offline"] and not rows[p]["pending"]
        table = kraft("topics", "describe", "solo", "-b", bootstrap)
        assert "offline" in table.stdout and "none" in table.stdout
        brokers = kraft_json("brokers", "list", "-b", bootstrap)["brokers"]
        [entry] = [b for b in brokers if b["id"] == 31]
        assert entry["state"] == "offline" and entry["epoch"] is None
    finally:
        broker.kill()
        kraft("topics", "delete", "solo", "--no-wait", "-b", bootstrap)


def test_broker_resyncs_after_reconnect_without_missing_changes(
    quorum: LocalQuorum, bootstrap: str, zk: KazooClient
) -> None:
    leader = quorum.wait_for_leader()["node_id"]
    node = next(i for i in quorum.ids if i != leader)  # a follower: the quorum stays up
    address = str(quorum.client_address(node))
    # Only that controller, so the broker is disconnected while it is down; a session
    # timeout long enough to survive the restart.
    broker = BrokerProc(41, address, "--session-timeout-ms", "15000")
    try:
        broker.wait_registered()
        wait_until(lambda: zk.get_children("/brokers/ids") == ["41"], what="only broker 41 live")
        before = len(broker.out)
        quorum.kill(node)
        created = kraft("topics", "create", "missed", "--partitions", "2", "-b", bootstrap)
        assert created.returncode == 0, created.stderr
        time.sleep(0.5)
        assert not [line for line in broker.out if "missed" in line]  # cut off: not told
        quorum.start_node(node)
        # The watch notifications were lost with the connection; the re-read finds the topic.
        for p in (0, 1):
            broker.wait_for(rf"broker 41: leader of missed-{p} at epoch 0 \(zxid 0x", timeout=30)
        new = broker.out[before:]
        assert len(new) == len(set(new)) == 2, new  # only the real changes, each once
        assert ask_status(broker.port)["leader_of"] == ["missed-0", "missed-1"]
    finally:
        broker.kill()
        if not quorum.alive(node):
            quorum.start_node(node)
        kraft("topics", "delete", "missed", "--no-wait", "-b", bootstrap)
