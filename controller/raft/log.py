"""The core's in-memory view of the replicated log: a compacted prefix plus a list of entries.

The log knows nothing about disk. The core tells it what was handed to storage
(`unstable_from`) and what storage confirmed durable (`persisted_index`); it answers term and
zxid questions for any index it still holds, including the snapshot boundary.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.raft.types import Entry, LogIndex, SnapshotMeta, Term, Zxid


class RaftLog:
    """Entries after a snapshot boundary, with durability bookkeeping.

    Invariants (asserted): entries are contiguous from `snap_index + 1`; terms and zxids never
    decrease along the log; `persisted_index <= last_index`; `unstable_from <= last_index + 1`.
    """

    __slots__ = (
        "entries",
        "persisted_index",
        "snap_index",
        "snap_term",
        "snap_zxid",
        "unstable_from",
    )

    def __init__(
        self, snap_index: LogIndex, snap_term: Term, snap_zxid: Zxid, entries: Sequence[Entry]
    ) -> None:
        self.snap_index = snap_index
        self.snap_term = snap_term
        self.snap_zxid = snap_zxid
        self.entries: list[Entry] = list(entries)
        for i, e in enumerate(self.entries):
            assert e.index == snap_index + 1 + i, (e.index, snap_index, i)
        # Everything recovered from storage is durable.
        self.persisted_index = self.last_index
        self.unstable_from = self.last_index + 1

    @property
    def first_index(self) -> LogIndex:
        return self.snap_index + 1

    @property
    def last_index(self) -> LogIndex:
        return self.snap_index + len(self.entries)

    @property
    def last_term(self) -> Term:
        return self.entries[-1].term if self.entries else self.snap_term

    @property
    def last_zxid(self) -> Zxid:
        return self.entries[-1].zxid if self.entries else self.snap_zxid

    def term_at(self, index: LogIndex) -> Term | None:
        """Term of `index`, or None when it is compacted away or beyond the end."""
        if index == self.snap_index:
            return self.snap_term
        if index < self.snap_index or index > self.last_index:
            return None
        return self.entries[index - self.snap_index - 1].term

    def zxid_at(self, index: LogIndex) -> Zxid | None:
        if index == self.snap_index:
            return self.snap_zxid
        if index < self.snap_index or index > self.last_index:
            return None
        return self.entries[index - self.snap_index - 1].zxid

    def entry(self, index: LogIndex) -> Entry:
        assert self.snap_index < index <= self.last_index, (index, self.snap_index)
        return self.entries[index - self.snap_index - 1]

    def slice(self, lo: LogIndex, hi: LogIndex, max_bytes: int) -> list[Entry]:
        """Entries [lo, hi] (inclusive), cut after `max_bytes` of payload (at least one)."""
        assert self.snap_index < lo, (lo, self.snap_index)
        assert hi <= self.last_index, (hi, self.last_index)
        if hi < lo:
            return []
        base = self.snap_index + 1
        out = self.entries[lo - base : hi - base + 1]
        total = 0
        for n, e in enumerate(out):
            total += len(e.data) + 48
            if total > max_bytes and n > 0:
                return out[:n]
        return out

    def is_up_to_date(self, last_index: LogIndex, last_term: Term) -> bool:
        """Raft §5.4.1: a candidate's log at least as up to date as ours."""
        my_term = self.last_term
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index)

    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries that directly follow the current last index."""
        if not entries:
            return
        assert entries[0].index == self.last_index + 1, (entries[0].index, self.last_index)
        prev_term, prev_zxid = self.last_term, self.last_zxid
        for e in entries:
            assert e.term >= prev_term, (e, prev_term)
            assert e.zxid > prev_zxid, (e, prev_zxid)
            prev_term, prev_zxid = e.term, e.zxid
        self.entries.extend(entries)

    def truncate_after(self, index: LogIndex) -> None:
        """Drop every entry after `index` (a follower resolving a conflict)."""
        assert index >= self.snap_index, (index, self.snap_index)
        del self.entries[index - self.snap_index :]
        self.persisted_index = min(self.persisted_index, index)
        self.unstable_from = min(self.unstable_from, index + 1)

    def compact(self, index: LogIndex, term: Term, zxid: Zxid) -> None:
        """Forget entries up to `index` (covered by a durable snapshot)."""
        assert self.snap_index <= index <= self.persisted_index, (index, self.persisted_index)
        assert self.term_at(index) == term, (index, term, self.term_at(index))
        del self.entries[: index - self.snap_index]
        self.snap_index, self.snap_term, self.snap_zxid = index, term, zxid

    def reset_to_snapshot(self, meta: SnapshotMeta) -> None:
        """Replace the whole log by a snapshot boundary (follower installing a snapshot)."""
        self.entries = []
        self.snap_index, self.snap_term, self.snap_zxid = meta.index, meta.term, meta.zxid
        # Durable once the host installs the Ready carrying the snapshot.
        self.persisted_index = meta.index
        self.unstable_from = meta.index + 1
