"""The `Ready` batch: the contract between the sans-IO core and whoever drives it.

Host loop (the trio node and the simulator do exactly this):

    core.step(msg) / core.tick() / core.propose(...)   # any number of inputs
    if core.has_ready():
        rd = core.ready()
        send(rd.early_messages)             # leader appends: safe before local persistence
        if rd.snapshot: storage.install_snapshot(rd.snapshot); state_machine.restore(...)
        storage.append(rd.entries)          # may truncate: entries[0].index <= last index
        if rd.hard_state: storage.save_hard_state(rd.hard_state)
        if rd.must_sync: storage.sync()     # one fsync covers the whole batch (group commit)
        send(rd.messages)                   # only after the persistence above
        apply(rd.committed)                 # in order; NOOP entries only advance `applied`
        core.advance(rd)                    # tells the core all of the above is done
"""

from __future__ import annotations

import attrs

from controller.raft.messages import Message
from controller.raft.types import Entry, HardState, LogIndex, NodeId, Snapshot, Term


@attrs.frozen(slots=True)
class SoftState:
    """Volatile role information, for status and for the shells' routing decisions."""

    leader_id: NodeId | None
    role: str  # "follower" | "candidate" | "pre_candidate" | "leader" | "observer"
    term: Term


@attrs.frozen(slots=True)
class Ready:
    """One batch of work produced by the core; see the module docstring for the order."""

    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    early_messages: tuple[Message, ...]
    messages: tuple[Message, ...]
    committed: tuple[Entry, ...]
    commit_index: LogIndex
    must_sync: bool
    soft_state: SoftState | None
