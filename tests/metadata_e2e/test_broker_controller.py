"""The active broker controller in a real 3-controller quorum (processes on loopback),
driven through a real ZooKeeper client (kazoo) the way brokers and admin tools use it."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoNodeError

from controller.localquorum import LocalQuorum
from controller.metadata import records as r
from tests.quorums import checked_quorum

pytestmark = pytest.mark.timeout(180)
T = TypeVar("T")


@pytest.fixture(scope="module")
def quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalQuorum]:
    with checked_quorum(
        tmp_path_factory.mktemp("brokerctl"),
        log_level="INFO",
        fsync=False,
        extra_args=["--leader-imbalance-check-interval-seconds", "0.5"],
    ) as q:
        yield q


@pytest.fixture
def zk(quorum: LocalQuorum) -> Iterator[KazooClient]:
    client = KazooClient(hosts=quorum.connect_string, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except NoNodeError as exc:
            last = exc
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def active_controller(zk: KazooClient) -> tuple[int, int]:
    """(controller id, controller epoch) once an active controller has written them."""

    def read() -> tuple[int, int] | None:
        # A new active controller replaces both znodes in one multi; two plain reads may
        # straddle it (the old id with the new epoch), so the epoch is read before and
        # after the id, and a change in between means: read again.
        before = zk.exists(r.CONTROLLER_EPOCH)
        if before is None:
            return None
        try:
            info = r.decode(zk.get(r.CONTROLLER)[0], r.ControllerInfo)
            data, after = zk.get(r.CONTROLLER_EPOCH)
        except NoNodeError:
            return None
        if after.mzxid != before.mzxid:
            return None
        return info.brokerid, r.decode_epoch(data)

    return wait_for("an active controller", read)


def broker_client(quorum: LocalQuorum, broker_id: int, rack: str) -> KazooClient:
    """A broker stand-in: a session holding the ephemeral registration."""
    client = KazooClient(hosts=quorum.connect_string, timeout=4)
    client.start(timeout=15)
    registration = r.BrokerRegistration(
        "127.0.0.1",
        9000 + broker_id,
        [f"PLAINTEXT://127.0.0.1:{9000 + broker_id}"],
        rack,
        str(int(time.time() * 1000)),
        uuid.uuid4().hex,
    )
    client.ensure_path(r.BROKER_IDS)
    client.create(r.broker_path(broker_id), r.encode(registration), ephemeral=True)
    return client


def create_topic(zk: KazooClient, name: str, assignment: dict[int, list[int]]) -> None:
    zk.ensure_path(r.BROKER_TOPICS)
    record = r.TopicAssignment({str(p): reps for p, reps in assignment.items()}, uuid.uuid4().hex)
    zk.create(r.topic_path(name), r.encode(record))


def states(zk: KazooClient, topic: str, count: int) -> dict[int, tuple[r.PartitionState, int]]:
    out = {}
    for p in range(count):
        data, stat = zk.get(r.state_path(topic, p))
        out[p] = (r.decode(data, r.PartitionState), stat.version)
    return out


def all_states(zk: KazooClient, topic: str, count: int) -> dict[int, tuple[r.PartitionState, int]]:
    return wait_for(f"partition states of {topic}", lambda: states(zk, topic, count))


@pytest.fixture
def fleet(quorum: LocalQuorum) -> Iterator[dict[int, KazooClient]]:
    brokers = {i: broker_client(quorum, i, f"r{i % 2}") for i in (1, 2, 3)}
    yield brokers
    for client in brokers.values():
        client.stop()
        client.close()


def test_new_topic_gets_states_written_once(zk: KazooClient, fleet: dict[int, KazooClient]) -> None:
    _controller, epoch = active_controller(zk)
    create_topic(zk, "orders", {0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]})
    got = all_states(zk, "orders", 3)
    for p, (state, version) in got.items():
        replicas = [[1, 2, 3], [2, 3, 1], [3, 1, 2]][p]
        assert state.leader == replicas[0]
        assert state.isr == replicas
        assert state.leader_epoch == 0
        assert state.controller_epoch == epoch
        assert version == 0, "a new partition's state is written exactly once"
    assert json.loads(zk.get(r.state_path("orders", 0))[0]) == {
        "leader": 1,
        "leader_epoch": 0,
        "isr": [1, 2, 3],
        "controller_epoch": epoch,
        "version": 1,
    }


def test_broker_death_moves_leadership_and_return_restores_it(
    quorum: LocalQuorum, zk: KazooClient, fleet: dict[int, KazooClient]
) -> None:
    active_controller(zk)
    create_topic(zk, "payments", {0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]})
    all_states(zk, "payments", 3)
    fleet.pop(1).stop()  # broker 1's session closes: its registration goes with it

    def moved() -> dict[int, tuple[r.PartitionState, int]] | None:
        got = states(zk, "payments", 3)
        return got if all(1 not in s.isr for s, _ in got.values()) else None

    got = wait_for("broker 1 to leave every ISR", moved)
    assert got[0][0].leader == 2 and got[0][0].leader_epoch == 1  # first live ISR replica
    assert got[0][0].isr == [2, 3]
    assert got[1][0].leader == 2 and got[1][0].leader_epoch == 0  # unchanged leader
    assert got[2][0].leader == 3 and got[2][0].leader_epoch == 0

    fleet[1] = broker_client(quorum, 1, "r1")  # back: rejoins ISRs, then leads again

    def restored() -> dict[int, tuple[r.PartitionState, int]] | None:
        got = states(zk, "payments", 3)
        return got if got[0][0].leader == 1 and all(1 in s.isr for s, _ in got.values()) else None

    got = wait_for("preferred leader 1 restored", restored)
    assert got[0][0].leader_epoch == 2


def test_last_isr_member_stays_and_partition_goes_offline(
    quorum: LocalQuorum, zk: KazooClient, fleet: dict[int, KazooClient]
) -> None:
    active_controller(zk)
    create_topic(zk, "single", {0: [3]})
    all_states(zk, "single", 1)
    fleet.pop(3).stop()

    def offline() -> r.PartitionState | None:
        state = states(zk, "single", 1)[0][0]
        return state if state.leader == r.NO_LEADER else None

    state = wait_for("partition offline", offline)
    assert state.isr == [3], "the last ISR member stays so its return is a clean election"
    assert state.leader_epoch == 1
    fleet[3] = broker_client(quorum, 3, "r1")

    def online() -> r.PartitionState | None:
        state = states(zk, "single", 1)[0][0]
        return state if state.leader == 3 else None

    assert wait_for("partition back online", online).leader_epoch == 2


def test_topic_deletion(zk: KazooClient, fleet: dict[int, KazooClient]) -> None:
    active_controller(zk)
    create_topic(zk, "doomed", {0: [1, 2], 1: [2, 3]})
    zk.ensure_path(r.CONFIG_TOPICS)
    zk.create(r.topic_config_path("doomed"), r.encode(r.TopicConfig({"retention.ms": "1"})))
    all_states(zk, "doomed", 2)
    zk.ensure_path(r.DELETE_TOPICS)
    zk.create(r.delete_topic_path("doomed"))
    wait_for("topic deleted", lambda: zk.exists(r.topic_path("doomed")) is None)
    assert zk.exists(r.topic_config_path("doomed")) is None
    assert zk.exists(r.delete_topic_path("doomed")) is None


def test_controlled_shutdown_moves_leaderships_first(
    zk: KazooClient, fleet: dict[int, KazooClient]
) -> None:
    active_controller(zk)
    create_topic(zk, "graceful", {0: [2, 1, 3], 1: [2, 3, 1]})
    all_states(zk, "graceful", 2)
    epoch = fleet[2].exists(r.broker_path(2)).czxid
    fleet[2].ensure_path(r.CONTROLLED_SHUTDOWN)
    fleet[2].create(
        r.controlled_shutdown_path(2),
        r.encode(r.ControlledShutdownRequest(epoch)),
        ephemeral=True,
    )

    def moved() -> dict[int, tuple[r.PartitionState, int]] | None:
        got = states(zk, "graceful", 2)
        return got if all(s.leader != 2 for s, _ in got.values()) else None

    got = wait_for("leaderships moved off broker 2", moved)
    assert got[0][0].leader == 1 and got[1][0].leader == 3
    assert all(2 not in s.isr for s, _ in got.values())
    assert all(s.leader != r.NO_LEADER for s, _ in got.values())


def test_controller_failover_bumps_epoch_and_fences_the_old_one(
    quorum: LocalQuorum, zk: KazooClient, fleet: dict[int, KazooClient]
) -> None:
    old_id, old_epoch = active_controller(zk)
    old_version = zk.exists(r.CONTROLLER_EPOCH).version
    create_topic(zk, "inflight", {p: [1 + p % 3, 1 + (p + 1) % 3] for p in range(50)})
    began = time.monotonic()
    quorum.kill(old_id, signal.SIGKILL)  # the active controller dies mid-creation
    try:

        def moved_on() -> tuple[int, int] | None:
            new = active_controller(zk)
            return new if new[1] > old_epoch else None

        new_id, new_epoch = wait_for("a new active controller", moved_on, timeout=10)
        elapsed = time.monotonic() - began
        assert new_id != old_id and new_epoch == old_epoch + 1
        assert elapsed < 3.0, f"controller failover took {elapsed:.2f} s"
        got = all_states(zk, "inflight", 50)
        assert all(version == 0 and s.leader_epoch == 0 for s, version in got.values()), (
            "each partition's state was created exactly once"
        )
        # A write fenced with the deposed controller's epoch version is refused.
        transaction = zk.transaction()
        transaction.check(r.CONTROLLER_EPOCH, old_version)
        transaction.set_data(r.state_path("inflight", 0), b"stale")
        results = transaction.commit()
        assert isinstance(results[0], BadVersionError)
        assert r.decode(zk.get(r.state_path("inflight", 0))[0], r.PartitionState)
    finally:
        quorum.start_node(old_id)
