"""In-memory storage for the simulator that forgets, on crash, everything not fsynced.

It mirrors `controller.storage.FileStorage`'s contract: `append` is a buffered write (may
truncate a suffix first), `sync` makes it durable, hard state and snapshots are written
atomically (durable at once), `compact` drops a prefix covered by a durable snapshot and
`install_snapshot` replaces the whole log.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.raft.core import InitialState
from controller.raft.types import Entry, HardState, LogIndex, Snapshot


class SimStorage:
    """A log whose durable image is updated only by `sync()`."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self._base: LogIndex = 0  # index just before log[0]
        self._log: list[Entry] = []  # what a reader of the page cache would see
        self._durable: list[Entry] = []  # what survives a crash
        self._dirty_from = 0  # first position of _log not yet reflected in _durable
        self.syncs = 0

    @property
    def last_index(self) -> LogIndex:
        return self._base + len(self._log)

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        assert self._base < first <= self.last_index + 1, (first, self._base, self.last_index)
        pos = first - self._base - 1
        if pos < len(self._log):
            del self._log[pos:]
        self._log.extend(entries)
        self._dirty_from = min(self._dirty_from, pos)

    def sync(self) -> None:
        self.syncs += 1
        del self._durable[self._dirty_from :]
        self._durable.extend(self._log[self._dirty_from :])
        self._dirty_from = len(self._log)
        assert len(self._durable) == len(self._log)

    def save_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def compact(self, index: LogIndex) -> None:
        assert self.snapshot is not None and self.snapshot.meta.index >= index
        if index <= self._base:
            return
        # Only the durable prefix may be compacted: the snapshot covers applied entries.
        drop = index - self._base
        assert drop <= self._dirty_from, (drop, self._dirty_from)
        del self._log[:drop]
        del self._durable[:drop]
        self._dirty_from -= drop
        self._base = index

    def install_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._base = snapshot.meta.index
        self._log, self._durable, self._dirty_from = [], [], 0

    def crash(self) -> None:
        """Lose every write that was not fsynced."""
        self._log = list(self._durable)
        self._dirty_from = len(self._log)

    def recover(self) -> InitialState:
        assert self._dirty_from == len(self._log)
        return InitialState(self.hard_state, self.snapshot, tuple(self._durable))
