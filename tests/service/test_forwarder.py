"""The forwarder: forwards tagged with the leader's term, failures reported at once, nothing
dropped silently, and a session's applied writes always a prefix of what it sent."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from controller.coord.commands import Applied, Barrier, decode_entry, encode_command
from controller.node.codec import Forward, ForwardFailed, ServiceFrame
from controller.node.server import ProposalFailed
from controller.service.forwarder import WriteForwarder
from controller.zk.constants import Err


@attrs.define
class FakeCore:
    is_leader: bool = False
    term: int = 3
    leader_id: int | None = 1
    last_index: int = 10
    commit_index: int = 10


@attrs.define
class FakeNode:
    """The parts of ControllerNode the forwarder uses, recording what it is asked to do."""

    node_id: int
    core: FakeCore = attrs.Factory(FakeCore)
    frames: list[tuple[int, ServiceFrame]] = attrs.Factory(list)
    submitted: list[tuple[bytes, Callable[..., None]]] = attrs.Factory(list)
    link_up: bool = True
    room: bool = True

    def send_peer(self, peer: int, frame: ServiceFrame) -> bool:
        if not self.link_up:
            return False
        self.frames.append((peer, frame))
        return True

    def has_room(self) -> bool:
        return self.room

    def submit(self, data: bytes, callback: Callable[..., None]) -> None:
        self.submitted.append((data, callback))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        yield

    async def wait_for_room(self) -> None:
        while not self.room:
            await trio.sleep(0.01)


class Results:
    def __init__(self) -> None:
        self.got: dict[int, Applied] = {}

    def done(self, key: int) -> Callable[[Applied], None]:
        def complete(result: Applied) -> None:
            self.got[key] = result

        return complete


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def run(fwd: WriteForwarder, body: Callable[[], Any]) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fwd.run)
        await settle()
        await body()
        nursery.cancel_scope.cancel()


async def test_a_follower_forwards_with_the_leaders_term_and_completes_on_apply() -> None:
    node = FakeNode(2)
    fwd = WriteForwarder(node, extended_types=False)  # type: ignore[arg-type]
    results = Results()

    async def body() -> None:
        seq = fwd.propose(lambda s: Barrier(2, s), results.done(1))
        await settle()
        [(peer, frame)] = node.frames
        assert peer == 1 and isinstance(frame, Forward) and frame.term == 3
        assert [s for s, _ in frame.commands] == [seq]
        fwd.applied(Applied(2, seq, 77))
        assert results.got[1].zxid == 77 and fwd.outstanding == 0

    await run(fwd, body)


async def test_a_refused_forward_fails_the_request_at_once_and_later_frames_of_the_term_too(
    clock: trio.testing.MockClock,
) -> None:
    """The leader of term 3 lost it: a frame of term 3 is refused, reported in a
    ForwardFailed frame at once, and every later frame of term 3 is refused as well, even
    if this node is leader again by then (of a later term)."""
    leader = FakeNode(1, FakeCore(is_leader=False, term=4, leader_id=None))
    fwd = WriteForwarder(leader, extended_types=False)  # type: ignore[arg-type]

    async def body() -> None:
        start = trio.current_time()
        fwd.on_forward(2, Forward(3, ((10, b"a"), (11, b"b"))))
        await settle()
        assert leader.frames == [(2, ForwardFailed((10, 11), Err.CONNECTIONLOSS))]
        assert trio.current_time() - start < 0.01  # not after a timeout
        leader.core.is_leader, leader.core.term = True, 3  # (contrived) leader of 3 again
        fwd.on_forward(2, Forward(3, ((12, b"c"),)))
        await settle()
        assert leader.frames[-1] == (2, ForwardFailed((12,), Err.CONNECTIONLOSS))
        assert leader.submitted == []

    await run(fwd, body)


async def test_the_origin_fails_reported_requests_with_connection_loss() -> None:
    node = FakeNode(2)
    fwd = WriteForwarder(node, extended_types=False)  # type: ignore[arg-type]
    results = Results()

    async def body() -> None:
        seq = fwd.propose(lambda s: Barrier(2, s), results.done(1))
        await settle()
        fwd.on_forward_failed(ForwardFailed((seq,), Err.CONNECTIONLOSS))
        assert results.got[1] == Applied(2, seq, 0, Err.CONNECTIONLOSS)
        assert fwd.requests_failed == 1

    await run(fwd, body)


async def test_an_entry_lost_after_proposal_is_reported_to_its_origin() -> None:
    leader = FakeNode(1, FakeCore(is_leader=True, term=3, leader_id=1))
    fwd = WriteForwarder(leader, extended_types=True)  # type: ignore[arg-type]

    async def body() -> None:
        fwd.on_forward(2, Forward(3, ((10, encode_command(Barrier(2, 10))),)))
        [(data, callback)] = leader.submitted
        at, cmd = decode_entry(data)
        assert at.extended_types and isinstance(cmd, Barrier)  # stamped by the leader
        callback(None, None, ProposalFailed("not the leader"))
        await settle()
        assert leader.frames == [(2, ForwardFailed((10,), Err.CONNECTIONLOSS))]

    await run(fwd, body)


async def test_a_full_peer_link_keeps_forwards_in_order_and_retries(
    clock: trio.testing.MockClock,
) -> None:
    node = FakeNode(2, link_up=False)
    fwd = WriteForwarder(node, extended_types=False)  # type: ignore[arg-type]
    results = Results()

    async def body() -> None:
        seqs = [fwd.propose(lambda s: Barrier(2, s), results.done(i)) for i in range(3)]
        await trio.sleep(0.2)
        assert node.frames == []
        node.link_up = True
        await trio.sleep(0.1)  # the retry period
        sent = [s for _, f in node.frames if isinstance(f, Forward) for s, _ in f.commands]
        assert sent == seqs
        assert results.got == {}

    await run(fwd, body)


async def test_a_withdrawn_request_is_never_sent(clock: trio.testing.MockClock) -> None:
    """After an earlier request of a connection failed, its unsent later ones are withdrawn,
    so they cannot apply after a gap."""
    node = FakeNode(2, link_up=False)
    fwd = WriteForwarder(node, extended_types=False)  # type: ignore[arg-type]
    results = Results()

    async def body() -> None:
        keep = fwd.propose(lambda s: Barrier(2, s), results.done(1))
        drop = fwd.propose(lambda s: Barrier(2, s), results.done(2))
        fwd.withdraw(drop)
        node.link_up = True
        await trio.sleep(0.1)
        sent = [s for _, f in node.frames if isinstance(f, Forward) for s, _ in f.commands]
        assert sent == [keep]

    await run(fwd, body)


async def test_a_leader_change_fails_what_the_old_leader_held_and_its_backlog() -> None:
    leader = FakeNode(1, FakeCore(is_leader=True, term=3, leader_id=1), room=False)
    fwd = WriteForwarder(leader, extended_types=False)  # type: ignore[arg-type]
    results = Results()

    async def body() -> None:
        fwd.propose(lambda s: Barrier(1, s), results.done(1))
        await settle()
        fwd.on_forward(2, Forward(3, ((10, b"x"),)))
        assert fwd.backlog == 2 and leader.submitted == []  # no room: waiting, not dropped
        leader.core.is_leader, leader.core.leader_id = False, 3
        fwd.leader_changed(3)
        await settle()
        assert results.got[1].err == Err.CONNECTIONLOSS
        assert leader.frames == [(2, ForwardFailed((10,), Err.CONNECTIONLOSS))]
        assert fwd.backlog == 0

    await run(fwd, body)


async def test_the_leader_proposes_its_backlog_when_room_comes(
    clock: trio.testing.MockClock,
) -> None:
    leader = FakeNode(1, FakeCore(is_leader=True, term=3, leader_id=1), room=False)
    fwd = WriteForwarder(leader, extended_types=False)  # type: ignore[arg-type]

    async def body() -> None:
        fwd.on_forward(2, Forward(3, tuple((i, encode_command(Barrier(2, i))) for i in range(5))))
        assert fwd.backlog == 5 and fwd.backlog_peak == 5
        leader.room = True
        await trio.sleep(0.05)
        assert fwd.backlog == 0 and len(leader.submitted) == 5

    await run(fwd, body)


async def test_a_lone_clients_deferred_write_goes_at_once_from_the_reader() -> None:
    """`propose(defer=True)` waits for the reader's `flush_deferred()`; with nothing in
    flight the forward is written there and then, with no task switch to the flush task."""
    node = FakeNode(2)
    fwd = WriteForwarder(node, extended_types=False)  # type: ignore[arg-type]
    results = Results()

    async def body() -> None:
        first = fwd.propose(lambda s: Barrier(2, s), results.done(1), defer=True)
        second = fwd.propose(lambda s: Barrier(2, s), results.done(2), defer=True)
        await settle()
        assert node.frames == []  # not before the reader has read all it had
        fwd.flush_deferred()
        [(peer, frame)] = node.frames  # synchronously, one frame for both
        assert peer == 1 and isinstance(frame, Forward)
        assert [s for s, _ in frame.commands] == [first, second]

    await run(fwd, body)


async def test_deferred_writes_behind_writes_in_flight_are_batched_by_the_flush_task() -> None:
    """With requests of ours in flight a new one cannot commit before them anyway: the
    flush task sends it, together with whatever other readers queued meanwhile."""
    node = FakeNode(2)
    fwd = WriteForwarder(node, extended_types=False)  # type: ignore[arg-type]
    results = Results()

    async def body() -> None:
        fwd.propose(lambda s: Barrier(2, s), results.done(1), defer=True)
        fwd.flush_deferred()
        assert len(node.frames) == 1  # in flight now
        second = fwd.propose(lambda s: Barrier(2, s), results.done(2), defer=True)
        fwd.flush_deferred()
        third = fwd.propose(lambda s: Barrier(2, s), results.done(3), defer=True)
        fwd.flush_deferred()
        assert len(node.frames) == 1  # not yet: the flush task takes them
        await settle()
        assert len(node.frames) == 2
        _, frame = node.frames[1]
        assert isinstance(frame, Forward)
        assert [s for s, _ in frame.commands] == [second, third]

    await run(fwd, body)


async def test_a_deferred_write_that_cannot_go_yet_is_retried_by_the_flush_task(
    clock: trio.testing.MockClock,
) -> None:
    """The leader's link is full when the reader flushes: the write stays queued and the
    flush task retries it, rather than waiting for an unrelated event."""
    node = FakeNode(2, link_up=False)
    fwd = WriteForwarder(node, extended_types=False)  # type: ignore[arg-type]
    results = Results()

    async def body() -> None:
        seq = fwd.propose(lambda s: Barrier(2, s), results.done(1), defer=True)
        fwd.flush_deferred()
        await settle()
        assert node.frames == []
        node.link_up = True
        await trio.sleep(1.0)
        [(_, frame)] = node.frames
        assert isinstance(frame, Forward) and [s for s, _ in frame.commands] == [seq]

    await run(fwd, body)
