"""Value types shared by the Raft core, the storage layer, the simulator and the shells."""

from __future__ import annotations

import enum
from typing import NamedTuple

import attrs

NodeId = int
Term = int
LogIndex = int
Zxid = int

ZXID_COUNTER_BITS = 32
ZXID_COUNTER_MAX = (1 << ZXID_COUNTER_BITS) - 1


def make_zxid(term: Term, counter: int) -> Zxid:
    """ZooKeeper-compatible position: the term in the high 32 bits, a per-term counter below.

    The counter is the entry's distance from the first entry of its term (the leader's
    no-op has counter 0), so zxids are strictly increasing along the log and across terms.
    """
    assert 0 <= term < (1 << 31), term
    assert 0 <= counter <= ZXID_COUNTER_MAX, counter
    return (term << ZXID_COUNTER_BITS) | counter


class EntryKind(enum.IntEnum):
    """What an entry carries. Only COMMAND entries reach the replicated state machine."""

    NOOP = 0  # appended by every new leader; lets it commit entries of earlier terms
    COMMAND = 1  # opaque bytes for the state machine
    CONFIG = 2  # reserved for dynamic membership


class Entry(NamedTuple):
    """One log record. `zxid` is assigned by the leader and stored verbatim everywhere.

    A NamedTuple rather than an attrs class: entries are created and serialized by the
    hundred thousand per second, and tuples are both cheaper to build and packed by msgpack
    as they are.
    """

    term: Term
    index: LogIndex  # type: ignore[assignment]  # shadows tuple.index on purpose
    zxid: Zxid
    kind: EntryKind
    data: bytes


@attrs.frozen(slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: Term = 0
    voted_for: NodeId | None = None


@attrs.frozen(slots=True)
class SnapshotMeta:
    """Position a snapshot covers (everything up to and including `index`) and the voter set."""

    index: LogIndex
    term: Term
    zxid: Zxid
    voters: tuple[NodeId, ...]
    observers: tuple[NodeId, ...] = ()


@attrs.frozen(slots=True)
class Snapshot:
    """A state machine image plus the log position it replaces."""

    meta: SnapshotMeta
    data: bytes
