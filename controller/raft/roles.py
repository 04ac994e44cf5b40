"""The roles a Raft member can be in."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """What this node currently does in the protocol.

    The values are the strings the status JSON, metrics and the shells have always used, so
    `core.role == "leader"` keeps working."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"
    OBSERVER = "observer"  # a non-voting member: replicates, never campaigns or votes


# Module-level aliases: enum member lookups through the class are slow on hot paths.
FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER, OBSERVER = (
    Role.FOLLOWER,
    Role.PRE_CANDIDATE,
    Role.CANDIDATE,
    Role.LEADER,
    Role.OBSERVER,
)
