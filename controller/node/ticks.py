"""Raft ticks on demand, so that an idle controller sleeps instead of counting time.

The core counts time in ticks (`limits.TICK_MS`). Delivering every tick as it fires woke
every controller 100 times a second to increment counters; on this kind of machine a trio
wake-up costs 0.1-0.3 ms of CPU, so an idle 3-controller quorum burnt 13-18 % of one core
doing nothing. Most ticks change nothing observable: a leader acts on the tick that sends a
heartbeat or ends a check-quorum round, a follower on the tick that ends its election
timeout. Now:

- ticks still fire on a fixed grid (`origin + k * period`), but are handed to the Raft loop
  lazily, as a count (`TickClock.fire`): by the ticker when the *next tick that can do
  something* is due (`ticks_until_due`), and by whoever puts a peer message into the loop's
  inbox, first. The inbox therefore holds ticks and messages in the order they happened, as
  before, and the core sees exactly the same sequence of `tick()` and `step()` calls; only
  ticks that change nothing arrive in batches;
- while the Raft loop is busy (waiting for an fsync) it cannot plan, so the clock falls
  back to one tick per period, exactly the old behaviour;
- a stalled process (e.g. a long garbage collection, or a big snapshot serialized on the
  event loop) does not count the stalled time, as the old per-tick ticker did not: the
  clock knows when the loop last ran (`alive_at`; every peer chunk and every loop turn
  report in), and the ticker also wakes after a heartbeat interval and a bit without any
  activity. Waking more than `STALL_TICKS` after that wake time means the process was
  stalled: only the ticks up to the wake time that are known to be quiet are delivered,
  and the due one fires one period later, after the messages that piled up meanwhile were
  read.

Sans-IO: times are plain floats passed in by the node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.raft.core import RaftCore

STALL_TICKS = 5
"""Waking this many periods after the deadline means the process was stalled."""
WATCH_TICKS = 8
"""The least number of ticks without any activity after which the ticker wakes, to tell a
stall from quiet. The node uses more than a heartbeat interval (`watch_ticks_for`), so a
follower hearing its leader never wakes for it."""
MAX_IDLE_TICKS = 100
"""Even when no tick is due (an observer), deliver the counted ticks at least this often."""


def ticks_until_due(core: RaftCore) -> int:
    """`RaftCore.ticks_until_due`, bounded to `[1, MAX_IDLE_TICKS]` (an observer, which no
    tick moves, still gets its counted ticks at least that often)."""
    due = core.ticks_until_due()
    return MAX_IDLE_TICKS if due is None else max(1, min(MAX_IDLE_TICKS, due))


def watch_ticks_for(heartbeat_ticks: int) -> int:
    """How long the ticker lets a quiet loop be: a heartbeat interval plus a margin for the
    heartbeat's own delivery."""
    return max(WATCH_TICKS, heartbeat_ticks + 3)


class TickClock:
    """The tick grid and how much of it has been handed to the Raft loop.

    `pushed`: ticks handed over so far; `planned`: the index of the next tick that may do
    something; `alive_at`: when the process was last seen running. The ticker sleeps until
    `wake_time()`.
    """

    def __init__(self, period: float, now: float, watch_ticks: int = WATCH_TICKS) -> None:
        self.period = period
        self.watch_ticks = watch_ticks
        self.origin = now
        self.pushed = 0
        self.planned = 1
        self.alive_at = now
        self.stalls = 0

    def due_time(self) -> float:
        """When the planned tick fires."""
        return self.origin + self.planned * self.period

    def wake_time(self) -> float:
        return min(self.due_time(), self.alive_at + self.watch_ticks * self.period)

    def plan(self, applied: int, until_due: int, now: float) -> None:
        """The loop (running at `now`) has applied `applied` ticks and the core says the
        next one that may act is `until_due` ticks later."""
        self.planned = max(applied + until_due, self.pushed + 1)
        self.alive_at = now

    def fire(self, now: float) -> int:
        """The number of ticks that fired since the last call; they must be handed to the
        loop, in order with the inputs that follow."""
        fired = int((now - self.origin) / self.period + 1e-9)
        stalled = now - self.wake_time() > STALL_TICKS * self.period
        if fired <= self.pushed:
            self.alive_at = now
            return 0
        if stalled:
            # Nothing ran for a while past the wake time: deliver the ticks up to it that
            # are known to be quiet, count none of the stalled time, and let the due tick
            # fire one period from now.
            last = int((self.wake_time() - self.origin) / self.period + 1e-9)
            count = max(0, min(last, self.planned - 1) - self.pushed)
            self.origin += (fired - self.pushed - count) * self.period
            self.stalls += 1
        else:
            count = fired - self.pushed
        self.pushed += count
        self.alive_at = now
        if self.pushed >= self.planned:
            self.planned = self.pushed + 1  # until the loop plans again: one per period
        return count
