"""The replicated state machine interface and the key/value machine used until the
coordination service exists (and by tests and benchmarks afterwards)."""

from __future__ import annotations

from typing import Protocol

import attrs
from cattrs.preconf.msgpack import make_converter

from controller.raft.types import Entry, EntryKind

_converter = make_converter()


class StateMachine(Protocol):
    """What the node applies committed entries to. Must be deterministic."""

    def apply(self, entry: Entry) -> object:
        """Apply one committed COMMAND entry; the result goes back to the proposer."""

    def snapshot(self) -> bytes:
        """An image of everything applied so far."""

    def restore(self, data: bytes) -> None:
        """Replace the state by a snapshot image."""

    def stats(self) -> dict[str, int]:
        """Small figures for status output."""


@attrs.frozen
class KVCommand:
    """A write to the key/value machine: `put` (value) or `delete`."""

    op: str
    key: str
    value: bytes = b""


@attrs.frozen
class KVSnapshot:
    """The key/value machine's snapshot image."""

    data: dict[str, bytes]
    index: int
    count: int


KV_PREFIX = b"K"  # distinguishes KV commands from opaque payloads (benchmarks) cheaply


def encode_kv(cmd: KVCommand) -> bytes:
    return KV_PREFIX + _converter.dumps(cmd)


class KVStateMachine:
    """A map from string keys to bytes; each applied entry records its index."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.applied_index = 0
        self.applied_commands = 0

    def apply(self, entry: Entry) -> object:
        assert entry.kind is EntryKind.COMMAND
        self.applied_index = entry.index
        self.applied_commands += 1
        if not entry.data.startswith(KV_PREFIX):
            return None  # an opaque payload (e.g. a benchmark's) is still a committed entry
        cmd = _converter.loads(entry.data[1:], KVCommand)
        if cmd.op == "put":
            previous = self.data.get(cmd.key)
            self.data[cmd.key] = cmd.value
            return previous
        if cmd.op == "delete":
            return self.data.pop(cmd.key, None)
        return None

    def snapshot(self) -> bytes:
        return _converter.dumps(KVSnapshot(self.data, self.applied_index, self.applied_commands))

    def restore(self, data: bytes) -> None:
        image = _converter.loads(data, KVSnapshot)
        self.data = dict(image.data)
        self.applied_index, self.applied_commands = image.index, image.count

    def stats(self) -> dict[str, int]:
        return {"keys": len(self.data), "applied_commands": self.applied_commands}


@attrs.frozen
class _CompositeImage:
    kv: bytes
    coord: bytes


class ControllerStateMachine:
    """What a controller replicates: the coordination service's tree and sessions, plus the
    small key/value map behind the admin protocol (tests, benchmarks). Commands are routed by
    their first byte."""

    def __init__(self, coord: StateMachine, kv: KVStateMachine | None = None) -> None:
        self.coord = coord
        self.kv = kv or KVStateMachine()

    def apply(self, entry: Entry) -> object:
        if entry.data.startswith(KV_PREFIX):
            return self.kv.apply(entry)
        return self.coord.apply(entry)

    def snapshot(self) -> bytes:
        data: bytes = _converter.dumps(_CompositeImage(self.kv.snapshot(), self.coord.snapshot()))
        return data

    def restore(self, data: bytes) -> None:
        image = _converter.loads(data, _CompositeImage)
        self.kv.restore(image.kv)
        self.coord.restore(image.coord)

    def stats(self) -> dict[str, int]:
        return {**self.kv.stats(), **self.coord.stats()}
