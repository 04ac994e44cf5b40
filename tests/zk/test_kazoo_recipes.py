"""kazoo's high-level recipes, which exercise sequential/ephemeral nodes and watches together."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionClosedError

from tests.zk.conftest import wait_until


def test_lock_mutual_exclusion(root: str, make_client: Callable[..., KazooClient]) -> None:
    clients = [make_client() for _ in range(3)]
    holders: list[int] = []
    max_inside = [0]
    inside = [0]
    guard = threading.Lock()

    def worker(n: int, client: KazooClient) -> None:
        lock = client.Lock(f"{root}/lock", identifier=f"w{n}")
        for _ in range(3):
            with lock:
                with guard:
                    inside[0] += 1
                    max_inside[0] = max(max_inside[0], inside[0])
                    holders.append(n)
                time.sleep(0.02)
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=worker, args=(n, c)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert max_inside[0] == 1
    assert sorted(holders) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_lock_released_when_holder_session_closes(
    root: str, make_client: Callable[..., KazooClient]
) -> None:
    a, b = make_client(), make_client()
    lock_a = a.Lock(f"{root}/lock", "a")
    assert lock_a.acquire(timeout=10)
    lock_b = b.Lock(f"{root}/lock", "b")
    assert not lock_b.acquire(blocking=False)
    assert lock_b.contenders() == ["a"]
    a.stop()  # session closed: its ephemeral lock node goes away
    assert lock_b.acquire(timeout=10)
    lock_b.release()


def test_election(root: str, make_client: Callable[..., KazooClient]) -> None:
    clients = [make_client() for _ in range(3)]
    leaders: list[str] = []
    stop = threading.Event()

    def run(name: str, client: KazooClient) -> None:
        election = client.Election(f"{root}/election", name)

        def lead() -> None:
            leaders.append(name)
            stop.wait(30)

        # This contender's client may be stopped while it leads.
        with contextlib.suppress(ConnectionClosedError):
            election.run(lead)

    for n, client in enumerate(clients):
        threading.Thread(target=run, args=(f"c{n}", client), daemon=True).start()
    wait_until(lambda: len(leaders) == 1, 10, "first leader")
    time.sleep(0.5)
    assert len(leaders) == 1
    first = leaders[0]
    clients[0].sync(f"{root}/election")
    contenders = clients[0].Election(f"{root}/election").contenders()
    assert contenders[0] == first and sorted(contenders) == ["c0", "c1", "c2"]
    clients[int(first[1:])].stop()
    wait_until(lambda: len(leaders) == 2, 10, "second leader")
    assert leaders[1] != first
    stop.set()


def test_barrier(root: str, make_client: Callable[..., KazooClient]) -> None:
    a, b = make_client(), make_client()
    barrier = a.Barrier(f"{root}/barrier")
    barrier.create()
    passed = threading.Event()

    def waiter() -> None:
        b.sync(f"{root}/barrier")  # a's create is another session's write
        if b.Barrier(f"{root}/barrier").wait(timeout=20):
            passed.set()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    assert not passed.is_set()
    barrier.remove()
    assert passed.wait(10)
    t.join(10)


def test_double_barrier(root: str, make_client: Callable[..., KazooClient]) -> None:
    clients = [make_client() for _ in range(3)]
    entered = []

    def member(n: int, client: KazooClient) -> None:
        barrier = client.DoubleBarrier(f"{root}/dbl", 3, identifier=f"m{n}")
        barrier.enter()
        entered.append(n)
        barrier.leave()

    threads = [threading.Thread(target=member, args=(n, c)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(entered) == [0, 1, 2]


def test_counter_concurrent_increments(root: str, make_client: Callable[..., KazooClient]) -> None:
    clients = [make_client() for _ in range(4)]
    per_thread = 25

    def bump(client: KazooClient) -> None:
        counter = client.Counter(f"{root}/counter")
        for _ in range(per_thread):
            counter += 1

    threads = [threading.Thread(target=bump, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    clients[0].sync(f"{root}/counter")
    assert clients[0].Counter(f"{root}/counter").value == per_thread * len(clients)
    data, stat = clients[0].get(f"{root}/counter")
    assert data == str(per_thread * len(clients)).encode()
    assert stat.version == per_thread * len(clients)


def test_queue_order(zk: KazooClient, root: str, make_client: Callable[..., KazooClient]) -> None:
    q = zk.Queue(f"{root}/queue")
    for i in range(5):
        q.put(f"item{i}".encode())
    assert len(q) == 5
    consumer_client = make_client()
    consumer_client.sync(f"{root}/queue")
    consumer = consumer_client.Queue(f"{root}/queue")
    assert [consumer.get() for _ in range(5)] == [f"item{i}".encode() for i in range(5)]
    assert consumer.get() is None
    zk.sync(f"{root}/queue")  # the consumer's deletes are another session's writes
    assert len(q) == 0


def test_locking_queue(zk: KazooClient, root: str) -> None:
    q = zk.LockingQueue(f"{root}/lq")
    q.put(b"low", priority=100)
    q.put(b"high", priority=1)
    assert len(q) == 2
    assert q.get(timeout=5) == b"high"
    assert q.consume()
    assert q.get(timeout=5) == b"low"
    assert q.consume()
    assert len(q) == 0


def test_party(root: str, make_client: Callable[..., KazooClient]) -> None:
    a, b = make_client(), make_client()
    party_a = a.Party(f"{root}/party", "alice")
    party_b = b.Party(f"{root}/party", "bob")
    party_a.join()
    assert len(party_a) == 1
    party_b.join()
    a.sync(f"{root}/party")
    assert len(party_a) == 2
    assert sorted(party_a) == ["alice", "bob"]
    party_a.leave()
    b.sync(f"{root}/party")
    assert list(party_b) == ["bob"]
    b.stop()  # ephemeral membership ends with the session
    wait_until(lambda: len(a.Party(f"{root}/party")) == 0, 10, "party empty")
