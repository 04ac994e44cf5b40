"""Unit tests of specific RaftCore behaviours the simulator only finds statistically."""

from __future__ import annotations

import pytest

from controller.raft.core import NotLeader, ProposalsBlocked, RaftCore
from controller.raft.messages import CommitNotice, Message, VoteRequest
from controller.raft.types import Entry, EntryKind, make_zxid
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


def test_leadership_transfer_to_a_named_voter() -> None:
    """The automatic choice of a target is tested in tests/raft/test_transfer.py."""
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
    # Appends lost while it was cut off are given up after three unanswered heartbeats.
    c.tick(20)
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


def _drain(core: RaftCore) -> list[Message]:
    """Run one node's Ready loop (storage is instant) and return what it sent."""
    out: list[Message] = []
    while core.has_ready():
        rd = core.ready()
        out.extend(rd.early_messages)
        out.extend(rd.messages)
        core.advance(rd)
    return out


def test_each_follower_learns_the_commit_as_soon_as_its_own_ack_lets_it() -> None:
    """Acks arriving at different times: no follower waits for a heartbeat (no ticks here)."""
    c = Cluster(heartbeat_ticks=5, election_ticks=20)
    leader = c.elect(1)
    f2, f3 = c.cores[2], c.cores[3]
    leader.propose([b"x"])
    index = leader.last_index
    appends = _drain(leader)
    to2 = [m for m in appends if m.dst == 2]
    to3 = [m for m in appends if m.dst == 3]
    assert to2 and to3
    for m in to2:
        f2.step(m)
    for m in to3:
        f3.step(m)
    ack2, ack3 = _drain(f2), _drain(f3)
    assert f2.commit_index < index and f3.commit_index < index
    # Follower 2's ack commits the entry; it hears so at once.
    for m in ack2:
        leader.step(m)
    sent = _drain(leader)
    assert leader.commit_index == index
    notices = [m for m in sent if isinstance(m, CommitNotice)]
    assert [(m.dst, m.commit) for m in notices] == [(2, index)]
    for m in notices:
        f2.step(m)
    assert f2.commit_index == index
    assert [e.data for e in _drain_committed(f2)][-1:] == [b"x"]
    # Follower 3's ack comes later, after the commit: it must not wait either.
    for m in ack3:
        leader.step(m)
    sent = _drain(leader)
    notices = [m for m in sent if isinstance(m, CommitNotice)]
    assert [(m.dst, m.commit) for m in notices] == [(3, index)]
    for m in notices:
        f3.step(m)
    assert f3.commit_index == index
    # Nothing is sent twice.
    assert not [m for m in _drain(leader) if isinstance(m, CommitNotice)]


def _drain_committed(core: RaftCore) -> list[Entry]:
    committed: list[Entry] = []
    while core.has_ready():
        rd = core.ready()
        committed.extend(rd.committed)
        core.advance(rd)
    return committed


def test_a_higher_term_from_a_losing_candidate_does_not_restart_the_election_timer() -> None:
    """Raft Figure 2: only the current leader or a granted vote restarts the timer.

    Regression for simulator seed 104375: a far-behind node campaigning (pre-vote off) every
    election timeout used to restart the up-to-date nodes' timers on each term bump, so
    no one who could win ever campaigned."""
    c = Cluster(pre_vote=False, check_quorum=False, election_ticks=10)
    leader = c.elect(1)
    c.isolate(3)
    for i in range(5):
        leader.propose([f"e{i}".encode()])
        c.stabilize()
    c.isolate(1)  # the leader dies; 2 holds the log, 3 is behind
    c.heal_between(2, 3)
    far_behind, up_to_date = c.cores[3], c.cores[2]
    for _ in range(200):
        # The laggard campaigns every 3 ticks, faster than any election timeout.
        for _ in range(3):
            up_to_date.tick()
            c.stabilize()
            if up_to_date.is_leader:
                break
        if up_to_date.is_leader:
            break
        far_behind.campaign()
        c.stabilize()
    assert up_to_date.is_leader
    assert not far_behind.is_leader


def _figure_8() -> dict[int, dict[int, bytes]]:
    """Raft paper, Figure 8, on three nodes; returns what each node applied at each index.

    n1 (term 1) appends x at index 2 and reaches no one; n2 wins term 2 and appends its
    no-op at index 2, reaching no one; n1 wins term 3 and gets x (an older term's entry)
    onto n3, a majority, then dies; n2 wins term 4 (its last term, 2, beats n3's 1) and
    overwrites index 2 on n3. Committing x by counting replicas would lose it."""
    c = Cluster(max_append_entries=1, pre_vote=False, check_quorum=False)
    n1, n2, n3 = c.cores[1], c.cores[2], c.cores[3]
    c.elect(1)
    c.isolate(1)
    n1.propose([b"x"])
    c.stabilize()
    # n2 wins term 2 with n3's vote, and is cut off before its no-op leaves.
    n2.campaign()
    for m in _drain_into(n2, c.applied):
        if m.dst == 3:
            n3.step(m)
    for m in _drain_into(n3, c.applied):
        if m.dst == 2:
            n2.step(m)
    assert n2.is_leader and n2.term == 2
    c.isolate(2)
    c.stabilize()
    assert n2.term_at(2) == 2 and n3.last_index == 1
    c.heal_between(1, 3)
    c.tick(5, only=(1,))  # n1's heartbeat meets term 2: n1 steps down
    assert n1.role == "follower" and n1.term == 2
    n1.campaign()  # term 3, with n3's vote (x makes n1's log the more up to date)
    # Deliver one message at a time until n1 learns that n3 holds x (index 2), before the
    # no-op of term 3 gets there.
    queue: list[Message] = []
    for _ in range(200):
        for core in (n1, n3):
            queue.extend(_drain_into(core, c.applied))
        deliverable = [m for m in queue if (m.src, m.dst) not in c.cut]
        if not deliverable:
            break
        msg = deliverable[0]
        queue.remove(msg)
        c.cores[msg.dst].step(msg)
        if n1.is_leader and n1.progress()[3].match_index == 2:
            break  # n1 knows x is on a majority; its own no-op (term 3) is not
    assert n1.term == 3 and n3.term_at(2) == 1 and n3.last_index == 2
    _drain_into(n1, c.applied)  # n1 acts on what it knows now, then dies
    c.isolate(1)
    c.heal_between(2, 3)
    c.tick(5, only=(2,))  # n2's heartbeat meets term 3: n2 steps down
    assert n2.role == "follower"
    c.elect(2)
    assert n2.term == 4
    for _ in range(5):
        c.tick()
    return {n: {e.index: e.data for e in c.applied[n]} for n in c.cores}


def _drain_into(core: RaftCore, applied: dict[int, list[Entry]]) -> list[Message]:
    out: list[Message] = []
    while core.has_ready():
        rd = core.ready()
        out.extend(rd.early_messages)
        out.extend(rd.messages)
        applied[core.node_id].extend(rd.committed)
        core.advance(rd)
    return out


def _agree(applied: dict[int, dict[int, bytes]]) -> bool:
    seen: dict[int, bytes] = {}
    for per_node in applied.values():
        for index, data in per_node.items():
            if seen.setdefault(index, data) != data:
                return False
    return True


def test_figure_8_an_older_terms_entry_is_not_committed_by_counting() -> None:
    applied = _figure_8()
    assert _agree(applied), applied
    assert 2 not in applied[1] or applied[1][2] == applied[2][2]


def test_figure_8_scenario_catches_the_unsafe_commit_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scenario above is able to fail: with Figure 8's bug, the nodes disagree."""
    from controller.raft import leader as leader_module

    def unsafe_commit(core: RaftCore) -> None:
        me = core._progress[core._id]
        me.match = core._log.persisted_index
        matches = sorted((core._progress[v].match for v in core._voters), reverse=True)
        candidate = matches[core._quorum - 1]
        if candidate > core.commit_index:
            core.commit_index = candidate
            core._commit_dirty = True

    monkeypatch.setattr(leader_module, "maybe_commit", unsafe_commit)
    assert not _agree(_figure_8())
