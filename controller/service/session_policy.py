"""When the leader expires sessions (pure: times are seconds on the leader's clock, fed in).

ZooKeeper's leader expires a session that showed no activity for its negotiated timeout
(SessionTrackerImpl). Activity on any controller reaches the leader as touches; a new leader
cannot know how long sessions were silent, so it gives each a full timeout.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping


class SessionExpiryPolicy:
    """Deadlines of the sessions a leader tracks; `due(now)` names those to expire."""

    def __init__(self) -> None:
        self._deadlines: dict[int, float] = {}
        self._expiring: set[int] = set()

    @property
    def tracked(self) -> int:
        return len(self._deadlines)

    def restart(self, timeouts_ms: Mapping[int, int], now: float) -> None:
        """This controller just became leader: every session gets a full timeout."""
        self._deadlines = {sid: now + t / 1000 for sid, t in timeouts_ms.items()}
        self._expiring.clear()

    def adopt(self, timeouts_ms: Mapping[int, int], now: float) -> None:
        """Sessions the leader did not track yet (a snapshot brought them) get a full
        timeout; tracked ones keep their deadline."""
        for sid, t in timeouts_ms.items():
            self._deadlines.setdefault(sid, now + t / 1000)

    def touched(self, sid: int, timeout_ms: int, now: float) -> None:
        """Activity: the session lives at least `timeout_ms` more."""
        self._deadlines[sid] = now + timeout_ms / 1000

    def closed(self, sid: int) -> None:
        self._deadlines.pop(sid, None)
        self._expiring.discard(sid)

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def due(self, now: float, existing: Container[int]) -> list[int]:
        """Sessions past their deadline, each named once until `closed`. Sessions no longer
        in `existing` are forgotten."""
        out: list[int] = []
        for sid, deadline in list(self._deadlines.items()):
            if deadline > now or sid in self._expiring:
                continue
            if sid not in existing:
                del self._deadlines[sid]
                continue
            self._expiring.add(sid)
            out.append(sid)
        return out

    def touched_all(self, sessions: Iterable[tuple[int, int]], now: float) -> None:
        for sid, timeout_ms in sessions:
            self.touched(sid, timeout_ms, now)
