"""Leadership transfer (Raft thesis §3.10): which voter `transfer_leadership()` picks when it
is given no target, and that the transfer completes without a disruptive election."""

from __future__ import annotations

import pytest

from controller.raft.core import ProposalsBlocked, RaftCore
from controller.raft.messages import AppendRequest, Message, TimeoutNow, VoteRequest
from tests.raft.cluster import Cluster


def _transfer(c: Cluster, leader: RaftCore, ticks: int = 0) -> list[Message]:
    """Transfer with no target and let the network settle, with up to `ticks` ticks (fewer
    than an election timeout: only the transfer can change the leader); return what was
    sent."""
    before = len(c.sent)
    leader.transfer_leadership()
    assert leader.transferring
    with pytest.raises(ProposalsBlocked):
        leader.propose([b"blocked while transferring"])
    c.stabilize()
    for _ in range(ticks):
        if not leader.is_leader:
            break
        c.tick()
    return c.sent[before:]


def _assert_clean_handover(
    c: Cluster, old: RaftCore, old_term: int, target: int, sent: list[Message]
) -> None:
    """`target` leads the very next term, elected by one transfer campaign: no pre-vote, no
    other candidate, no term skipped; the old leader follows it and holds the same log."""
    new = c.cores[target]
    assert new.is_leader and new.term == old_term + 1
    assert c.leader() is new
    assert not old.is_leader and old.leader_id == target
    timeouts = [m for m in sent if isinstance(m, TimeoutNow)]
    assert [m.dst for m in timeouts] == [target]
    votes = [m for m in sent if isinstance(m, VoteRequest)]
    assert votes and all(m.src == target and m.transfer and not m.pre_vote for m in votes)
    reachable = [core for n, core in c.cores.items() if (target, n) not in c.cut]
    assert {core.term for core in reachable} == {new.term}
    assert new.elections_started() == 1
    # The old leader's entries all survived, and the new leader takes proposals.
    index, _ = new.propose([b"after"])
    c.stabilize()
    assert all(core.commit_index == index for core in reachable)


def test_the_most_caught_up_voter_is_chosen() -> None:
    c = Cluster(voters=3)
    leader = c.elect(1)
    c.isolate(2)  # node 2 misses three entries, then is back (no tick: it is not probed yet)
    for i in range(3):
        leader.propose([f"e{i}".encode()])
        c.stabilize()
    c.heal()
    progress = leader.progress()
    assert progress[2].match_index < progress[3].match_index == leader.last_index
    sent = _transfer(c, leader)
    _assert_clean_handover(c, leader, 1, 3, sent)


def test_equally_caught_up_voters_go_to_the_lowest_id() -> None:
    c = Cluster(voters=5)
    leader = c.elect(3)
    leader.propose([b"x"])
    c.stabilize()
    assert {p.match_index for p in leader.progress().values()} == {leader.last_index}
    sent = _transfer(c, leader)
    _assert_clean_handover(c, leader, 1, 1, sent)


def test_a_lagging_voter_is_caught_up_before_it_is_told_to_campaign() -> None:
    """Every other voter lags: the chosen one (most caught up) gets the missing entries
    first, and TimeoutNow only once it holds the leader's whole log (thesis §3.10 step 2).
    The append node 2 missed was pipelined, so it is re-sent after two heartbeats."""
    c = Cluster(voters=3)
    leader = c.elect(1)
    c.isolate(3)
    leader.propose([b"a"])
    c.stabilize()
    c.isolate(2)
    leader.propose([b"b"])  # uncommitted: no one else holds it
    c.stabilize()
    c.heal()
    last = leader.last_index
    assert leader.progress()[2].match_index == last - 1
    assert leader.progress()[3].match_index == last - 2
    sent = _transfer(c, leader, ticks=15)
    first_timeout = next(i for i, m in enumerate(sent) if isinstance(m, TimeoutNow))
    appends_before = [m for m in sent[:first_timeout] if isinstance(m, AppendRequest)]
    assert any(m.dst == 2 and m.entries and m.entries[-1].index == last for m in appends_before)
    _assert_clean_handover(c, leader, 1, 2, sent)
    assert [e.data for e in c.applied[2] if e.data][:2] == [b"a", b"b"]


def test_an_observer_is_never_chosen_even_when_it_is_the_most_caught_up() -> None:
    c = Cluster(voters=3, observers=1)
    leader = c.elect(1)
    c.isolate(2)
    c.isolate(3)
    c.heal_between(1, 4)
    leader.propose([b"only the observer has it"])
    c.stabilize()
    c.heal()
    progress = leader.progress()
    assert progress[4].match_index == leader.last_index > progress[2].match_index
    assert not progress[4].is_voter
    sent = _transfer(c, leader, ticks=15)
    assert not [m for m in sent if m.dst == 4 and isinstance(m, TimeoutNow)]
    _assert_clean_handover(c, leader, 1, 2, sent)
    assert c.cores[4].role == "observer" and c.cores[4].leader_id == 2


def test_a_single_voter_has_no_one_to_hand_over_to() -> None:
    c = Cluster(voters=1, observers=1)
    leader = c.elect(1)
    leader.transfer_leadership()
    assert not leader.transferring and leader.is_leader
    leader.propose([b"still taking proposals"])


def test_a_transfer_that_does_not_complete_is_abandoned_after_an_election_timeout() -> None:
    c = Cluster(voters=3, election_ticks=20)
    leader = c.elect(1)
    leader.transfer_leadership(2)
    c.isolate(2)
    c.stabilize()
    c.heal_between(1, 3)
    c.tick(19, only=(1,))
    assert leader.transferring and leader.is_leader
    c.tick(1, only=(1,))
    assert not leader.transferring and leader.is_leader and leader.term == 1
    leader.propose([b"proposals resume"])


def test_a_voter_not_heard_from_within_an_election_timeout_is_not_chosen() -> None:
    """Node 1 is as caught up as the others and has the lowest id, but it stopped answering
    more than an election timeout ago: TimeoutNow to it would be lost, the transfer would
    block proposals for an election timeout and then fail."""
    c = Cluster(voters=5, election_ticks=20)
    leader = c.elect(2)
    c.isolate(1)
    c.tick(25)  # heartbeats: 3, 4 and 5 answer, so check-quorum keeps the leader
    assert leader.is_leader
    progress = leader.progress()
    assert len({p.match_index for p in progress.values()}) == 1
    assert progress[1].last_contact_ticks >= 20 > progress[3].last_contact_ticks
    sent = _transfer(c, leader)
    _assert_clean_handover(c, leader, 1, 3, sent)


def test_with_no_voter_heard_from_recently_the_most_caught_up_is_still_tried() -> None:
    c = Cluster(voters=3, election_ticks=20, check_quorum=False)
    leader = c.elect(1)
    c.isolate(2)
    leader.propose([b"x"])
    c.stabilize()
    c.isolate(1)
    c.tick(25, only=(1,))
    leader.transfer_leadership()
    assert leader.transferring
    timeouts = [m for m in leader.ready().messages if isinstance(m, TimeoutNow)]
    assert [m.dst for m in timeouts] == [3]
