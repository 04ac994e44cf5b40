"""The demo broker's pure metadata cache: role changes, zxid tracking, re-sync."""

from __future__ import annotations

from broker_demo.cache import MembershipChange, MetadataCache, RoleChange
from controller.metadata import records as r
from controller.metadata.image import ZnodeView
from controller.metadata.records import BrokerRegistration, PartitionState, TopicAssignment

ME = 2


def state(leader: int, epoch: int, isr: list[int]) -> PartitionState:
    return PartitionState(leader=leader, leader_epoch=epoch, isr=isr, controller_epoch=1)


def registration(broker_id: int) -> BrokerRegistration:
    port = 9000 + broker_id
    return BrokerRegistration(
        "127.0.0.1", port, [f"PLAINTEXT://127.0.0.1:{port}"], None, "0", f"inc-{broker_id}"
    )


def view(record: object, mzxid: int, czxid: int | None = None) -> ZnodeView:
    return ZnodeView(r.encode(record), 0, czxid if czxid is not None else mzxid, mzxid)


def roles(changes: list[object]) -> list[tuple[str, str, int, int]]:
    return [
        (c.name, c.role, c.leader, c.leader_epoch) for c in changes if isinstance(c, RoleChange)
    ]


def test_leader_follower_and_removal_lines() -> None:
    cache = MetadataCache(ME)
    cache.update_assignment("orders", {3: [2, 1, 3]}, 0x10)
    [change] = cache.update_partition("orders", 3, state(2, 5, [2, 1, 3]), 0x11)
    assert change.describe(ME) == "broker 2: leader of orders-3 at epoch 5 (zxid 0x11)"
    [change] = cache.update_partition("orders", 3, state(1, 6, [1, 3]), 0x12)
    assert change.describe(ME) == "broker 2: follower of orders-3 (leader 1, epoch 6) (zxid 0x12)"
    [change] = cache.update_partition("orders", 3, None, 0x13)
    assert change.describe(ME) == "broker 2: no longer a replica of orders-3 (zxid 0x13)"
    assert cache.leader_of() == [] and cache.follower_of() == []


def test_isr_only_change_is_not_a_role_change() -> None:
    cache = MetadataCache(ME)
    cache.update_assignment("t", {0: [1, 2, 3]}, 1)
    assert roles(cache.update_partition("t", 0, state(1, 0, [1, 2, 3]), 2)) == [
        ("t-0", "follower", 1, 0)
    ]
    assert cache.update_partition("t", 0, state(1, 0, [1, 3]), 3) == []  # dropped from the ISR
    assert cache.follower_of() == ["t-0"]  # still an assigned replica
    # A new leader epoch with the same leader is a new LeaderAndIsr: reported.
    assert roles(cache.update_partition("t", 0, state(1, 1, [1, 3]), 4)) == [
        ("t-0", "follower", 1, 1)
    ]


def test_no_role_without_a_state_and_not_a_replica() -> None:
    cache = MetadataCache(ME)
    assert cache.update_assignment("t", {0: [2, 1]}, 1) == []  # pending: no state yet
    assert cache.update_partition("t", 1, state(3, 0, [3]), 2) == []  # not ours
    assert roles(cache.update_partition("t", 0, state(2, 0, [2, 1]), 3)) == [
        ("t-0", "leader", 2, 0)
    ]
    assert cache.leader_of() == ["t-0"]


def test_leaderless_partition_follower_line() -> None:
    cache = MetadataCache(ME)
    cache.update_assignment("t", {0: [1, 2]}, 1)
    [change] = cache.update_partition("t", 0, state(-1, 4, [1]), 5)
    assert change.describe(ME) == "broker 2: follower of t-0 (no leader, epoch 4) (zxid 0x5)"


def test_older_reads_are_ignored_and_zxid_tracked() -> None:
    cache = MetadataCache(ME)
    cache.update_assignment("t", {0: [2]}, 0x20)
    cache.update_partition("t", 0, state(2, 3, [2]), 0x30)
    assert cache.update_partition("t", 0, state(1, 2, [1]), 0x25) == []  # stale
    assert cache.leader_of() == ["t-0"]
    assert cache.zxid == 0x30
    assert cache.partitions()[("t", 0)] == (state(2, 3, [2]), 0x30)
    status = cache.status()
    assert status["metadata_zxid"] == "0x30"
    assert status["partitions"]["t-0"] == {
        "leader": 2, "leader_epoch": 3, "isr": [2], "replicas": [2], "zxid": "0x30",
    }  # fmt: skip


def test_membership_changes_skip_self_and_detect_bounces() -> None:
    cache = MetadataCache(ME)
    assert cache.update_broker(ME, 0x5, 0x5) == []  # our own registration
    [joined] = cache.update_broker(3, 0x7, 0x7, registration(3))
    assert joined == MembershipChange(3, True, 0x7, 0x7)
    assert joined.describe(ME) == "broker 2: broker 3 joined (zxid 0x7)"
    assert cache.update_broker(3, 0x7, 0x7) == []  # the same registration read again
    bounced = cache.update_broker(3, 0x9, 0x9)  # a new incarnation (new epoch)
    assert [(c.joined, c.epoch) for c in bounced if isinstance(c, MembershipChange)] == [
        (False, 0x7),
        (True, 0x9),
    ]
    [left] = cache.update_broker(3, None, 0xA)
    assert left.describe(ME) == "broker 2: broker 3 left (zxid 0xa)"
    assert cache.live_brokers() == {ME: 0x5}


def test_observe_decodes_paths_and_ignores_garbage() -> None:
    cache = MetadataCache(ME)
    assignment = TopicAssignment(partitions={"0": [2, 1]}, topic_id="x")
    assert cache.observe("/brokers/topics/t", view(assignment, 3)) == []
    changes = cache.observe("/brokers/topics/t/partitions/0/state", view(state(2, 0, [2, 1]), 4))
    assert roles(changes) == [("t-0", "leader", 2, 0)]
    assert cache.observe("/brokers/topics/t/partitions", ZnodeView(b"", 0, 4, 4)) == []
    # Garbage in a state znode counts as missing.
    bad = ZnodeView(b"not json", 1, 4, 9)
    assert roles(cache.observe("/brokers/topics/t/partitions/0/state", bad)) == [
        ("t-0", "none", -1, -1)
    ]
    [joined] = cache.observe("/brokers/ids/1", view(registration(1), 0x50, czxid=0x40))
    assert isinstance(joined, MembershipChange) and joined.epoch == 0x40


def tree(states: dict[tuple[str, int], tuple[PartitionState, int]]) -> list[tuple[str, ZnodeView]]:
    nodes: list[tuple[str, ZnodeView]] = [("/brokers/ids/1", view(registration(1), 1))]
    topics: dict[str, dict[str, list[int]]] = {}
    for (topic, p), (s, zxid) in states.items():
        topics.setdefault(topic, {})[str(p)] = [2, 1]
        nodes.append((f"/brokers/topics/{topic}/partitions/{p}/state", view(s, zxid)))
    for topic, parts in topics.items():
        nodes.append((f"/brokers/topics/{topic}", view(TopicAssignment(partitions=parts), 2)))
    return nodes


def test_resync_yields_only_real_changes() -> None:
    cache = MetadataCache(ME)
    first = {("a", 0): (state(2, 0, [2, 1]), 10), ("a", 1): (state(1, 0, [1, 2]), 10)}
    changes = cache.resync(tree(first), 10)
    assert roles(changes) == [("a-0", "leader", 2, 0), ("a-1", "follower", 1, 0)]
    assert [c for c in changes if isinstance(c, MembershipChange)] == [
        MembershipChange(1, True, 1, 1)
    ]
    # Re-reading the same tree (a reconnect with nothing missed) changes nothing.
    assert cache.resync(tree(first), 20) == []
    # While disconnected: a-0's leadership moved, a-1 was deleted, b-0 appeared, broker 1 left.
    second = {("a", 0): (state(1, 1, [1]), 30), ("b", 0): (state(2, 0, [2]), 31)}
    nodes = [n for n in tree(second) if n[0] != "/brokers/ids/1"]
    changes = cache.resync(nodes, 32)
    assert roles(changes) == [
        ("a-0", "follower", 1, 1),
        ("b-0", "leader", 2, 0),
        ("a-1", "none", -1, -1),
    ]
    assert [c.describe(ME) for c in changes if isinstance(c, MembershipChange)] == [
        "broker 2: broker 1 left (zxid 0x20)"
    ]
    assert cache.zxid == 32
    assert cache.leader_of() == ["b-0"] and cache.follower_of() == ["a-0"]


def test_topic_deletion_drops_roles_once() -> None:
    cache = MetadataCache(ME)
    cache.resync(tree({("a", 0): (state(2, 0, [2, 1]), 5)}), 5)
    # The controller deletes children first; the broker reads them parents first.
    assert cache.update_assignment("a", None, 9) == []  # still the leader per its state
    assert roles(cache.update_partition("a", 0, None, 9)) == [("a-0", "none", -1, -1)]
    assert cache.resync(tree({}), 10) == []
