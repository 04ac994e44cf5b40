"""Elections in `RaftCore`: the election timer of followers and candidates, the pre-vote and
vote rounds, and the step functions of the two campaigning roles.

Functions of the core rather than methods (etcd's `stepCandidate` shape): the core installs
`step_pre_candidate` or `step_candidate`, and the matching tick function, on each transition.
Vote *requests* are answered by the common step in `controller.raft.core` whatever the role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from controller.raft import leader
from controller.raft.messages import (
    AppendRequest,
    CommitNotice,
    HeartbeatRequest,
    Message,
    SnapshotRequest,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from controller.raft.roles import CANDIDATE, LEADER, PRE_CANDIDATE
from controller.raft.types import NodeId

if TYPE_CHECKING:
    from controller.raft.core import RaftCore


# ------------------------------------------------------------------ ticks


def tick_observer(core: RaftCore) -> None:
    # Observers never campaign; the count only ages what they heard from the leader.
    core._election_elapsed += 1


def tick_follower(core: RaftCore) -> None:
    core._election_elapsed += 1
    if core._election_elapsed >= core._randomized_timeout:
        _start_election(core)


def tick_candidate(core: RaftCore) -> None:
    """Election timer of a pre-candidate or candidate: its round timed out if it fires."""
    core._election_elapsed += 1
    if core._election_elapsed >= core._randomized_timeout:
        core._failed_elections += 1  # widens the next timeout (election backoff)
        _start_election(core)


def _start_election(core: RaftCore) -> None:
    core._election_elapsed = 0
    if core.config.pre_vote:
        become_pre_candidate(core)
    else:
        become_candidate(core, transfer=False)


# ------------------------------------------------------------------ transitions


def become_pre_candidate(core: RaftCore) -> None:
    assert core._is_voter and core._role is not LEADER
    # Pre-vote does not touch term or vote: a partitioned node cannot inflate terms.
    core._role = PRE_CANDIDATE
    core._step = step_pre_candidate
    core._tick = tick_candidate
    core._leader_id = None
    core._votes = {core._id: True}
    core._election_elapsed = 0
    core._reset_randomized_timeout()
    if won(core, core._votes):
        become_candidate(core, transfer=False)
        return
    for v in core._voters:
        if v != core._id:
            core._send(
                VoteRequest(
                    core._term + 1,
                    core._id,
                    v,
                    core._log.last_index,
                    core._log.last_term,
                    pre_vote=True,
                )
            )


def become_candidate(core: RaftCore, *, transfer: bool) -> None:
    assert core._is_voter and core._role is not LEADER
    core._elections_started += 1
    core._reset(core._term + 1)
    core._role = CANDIDATE
    core._step = step_candidate
    core._tick = tick_candidate
    core._voted_for = core._id
    core._votes = {core._id: True}
    if won(core, core._votes):
        leader.become_leader(core)
        return
    for v in core._voters:
        if v != core._id:
            core._send(
                VoteRequest(
                    core._term,
                    core._id,
                    v,
                    core._log.last_index,
                    core._log.last_term,
                    transfer=transfer,
                )
            )


def won(core: RaftCore, votes: dict[NodeId, bool]) -> bool:
    return sum(1 for v in core._voters if votes.get(v)) >= core._quorum


def lost(core: RaftCore, votes: dict[NodeId, bool]) -> bool:
    return sum(1 for v in core._voters if votes.get(v) is False) >= core._quorum


# ------------------------------------------------------------------ step


def step_pre_candidate(core: RaftCore, msg: Message) -> None:
    """A message of the current term, other than a vote request, reaching a pre-candidate."""
    if isinstance(msg, VoteResponse):
        if msg.pre_vote:  # a real vote answers an earlier campaign of ours, now lost
            _tally(core, msg, on_win=lambda: become_candidate(core, transfer=False))
    else:
        _step_campaigning(core, msg)


def step_candidate(core: RaftCore, msg: Message) -> None:
    """A message of the current term, other than a vote request, reaching a candidate."""
    if isinstance(msg, VoteResponse):
        if not msg.pre_vote:  # a late pre-vote answer: that round is already won
            _tally(core, msg, on_win=lambda: leader.become_leader(core))
    else:
        _step_campaigning(core, msg)


def _tally(core: RaftCore, msg: VoteResponse, *, on_win: Callable[[], None]) -> None:
    core._votes[msg.src] = msg.granted
    if won(core, core._votes):
        on_win()
    elif lost(core, core._votes):
        core._failed_elections += 1
        core._become_follower(core._term, None)


def _step_campaigning(core: RaftCore, msg: Message) -> None:
    if isinstance(msg, AppendRequest | HeartbeatRequest | SnapshotRequest | CommitNotice):
        # Someone already won this term: follow it, and handle the message as its follower.
        core._become_follower(core._term, msg.src)
        core._step(core, msg)
    elif isinstance(msg, TimeoutNow):
        become_candidate(core, transfer=True)
    # Responses to a leadership this node has lost need nothing.
