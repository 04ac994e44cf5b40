"""Unit tests of specific RaftCore behaviours the simulator only finds statistically."""

from __future__ import annotations

import pytest

from controller.raft.core import NotLeader, ProposalsBlocked
from controller.raft.messages import VoteRequest
from controller.raft.types import EntryKind, make_zxid
from tests.raft.cluster import Cluster


def test_new_leader_commits_a_noop_and_assigns_zxids() -> None:
    c = Cluster()
    leader = c.elect(1)
    index, zxid = leader.propose([b"a", b"b"])
    c.stabilize()
    assert (index, zxid) == (3, make_zxid(1, 2))
    for applied in c.applied.values():
        assert [e.kind for e in applied] == [EntryKind.NOOP, EntryKind.COMMAND, EntryKind.COMMAND]
        assert [e.data for e in applied[1:]] == [b"a", b"b"]
    # Next term restarts the counter above every earlier zxid.
    leader.transfer_leadership(2)
    c.stabilize()
    _, zxid2 = c.cores[2].propose([b"c"])
    assert zxid2 == make_zxid(2, 1) > zxid


def test_followers_reject_proposals_with_the_leader_id() -> None:
    c = Cluster()
    c.elect(2)
    with pytest.raises(NotLeader) as info:
        c.cores[1].propose([b"x"])
    assert info.value.leader_id == 2


def test_pre_vote_keeps_a_rejoining_node_from_disturbing_the_leader() -> None:
    c = Cluster()
    leader = c.elect(1)
    c.isolate(3)
    c.tick(200, only=(3,))  # node 3 times out many times while cut off
    assert c.cores[3].term == leader.term  # pre-vote never raised its term
    c.heal()
    c.tick(5)
    assert leader.is_leader and leader.term == 1


def test_without_pre_vote_a_rejoining_node_bumps_the_term() -> None:
    c = Cluster(pre_vote=False, check_quorum=False)
    c.elect(1)
    c.isolate(3)
    c.tick(200, only=(3,))
    assert c.cores[3].term > 1  # the contrast that shows the pre-vote test can fail


def test_check_quorum_makes_an_isolated_leader_step_down() -> None:
    c = Cluster()
    leader = c.elect(1)
    c.isolate(1)
    c.tick(45, only=(1,))
    assert not leader.is_leader
    with pytest.raises(NotLeader):
        leader.propose([b"lost"])


def test_leader_lease_ignores_disruptive_votes() -> None:
    c = Cluster()
    c.elect(1)
    follower = c.cores[2]
    follower.step(VoteRequest(term=5, src=3, dst=2, last_index=100, last_term=4))
    assert follower.term == 1
    assert not follower.has_ready() or not any(
        isinstance(m, VoteRequest) for m in follower.ready().messages
    )


def test_leadership_transfer_to_most_caught_up_voter() -> None:
    c = Cluster()
    leader = c.elect(1)
    leader.propose([b"x"])
    c.stabilize()
    leader.transfer_leadership(3)
    with pytest.raises(ProposalsBlocked):
        leader.propose([b"y"])
    c.stabilize()
    assert c.cores[3].is_leader and c.cores[3].term == 2
    assert not leader.is_leader


def test_observers_replicate_but_never_vote_or_count() -> None:
    c = Cluster(voters=3, observers=1)
    leader = c.elect(1)
    leader.propose([b"x"])
    c.stabilize()
    assert [e.data for e in c.applied[4]][-1] == b"x"
    observer = c.cores[4]
    assert observer.role == "observer"
    c.tick(500, only=(4,))
    assert observer.role == "observer" and observer.term == 1
    # With two voters gone, the observer does not make a quorum.
    c.isolate(2)
    c.isolate(3)
    leader.propose([b"y"])
    c.stabilize()
    assert (leader.commit_index, leader.last_index) == (2, 3)


def test_backpressure_bounds_uncommitted_entries() -> None:
    c = Cluster(max_uncommitted_entries=10)
    leader = c.elect(1)
    c.isolate(1)
    leader.propose([b"x"] * 10)
    assert leader.proposal_room() == 0
    with pytest.raises(ProposalsBlocked):
        leader.propose([b"y"])


def test_lagging_follower_catches_up_by_chunked_snapshot() -> None:
    from controller.raft.types import Snapshot

    c = Cluster(snapshot_chunk_bytes=7)
    leader = c.elect(1)
    c.isolate(3)
    for i in range(20):
        leader.propose([f"e{i}".encode()])
        c.stabilize()
    meta = leader.snapshot_meta(leader.applied_index)
    leader.compact(Snapshot(meta, b"state-machine-image-" * 3))
    c.heal()
    c.tick(10)
    follower = c.cores[3]
    assert follower.first_index == meta.index + 1
    assert follower.commit_index == leader.commit_index
    chunks = [m for m in c.sent if type(m).__name__ == "SnapshotRequest" and m.dst == 3]
    assert len(chunks) >= 9


def test_conflicting_suffix_is_replaced() -> None:
    c = Cluster()
    leader = c.elect(1)
    c.isolate(1)
    leader.propose([b"orphan1", b"orphan2"])
    c.stabilize()
    c.heal()
    c.isolate(1)
    c.cut -= {(2, 3), (3, 2)}
    c.tick(60, only=(2, 3))
    new_leader = c.leader()
    assert new_leader is not None and new_leader.node_id in (2, 3)
    new_leader.propose([b"winner"])
    c.stabilize()
    c.heal()
    c.tick(20)
    assert [e.data for e in c.applied[1] if e.data] == [b"winner"]
