"""Log entry payloads of the coordination service and their results.

Every command names its `origin` controller and a per-origin `seq`, so the controller that
received the client's request can match the applied entry to the waiting request, whichever
controller proposed it. Time and session ids come from the command and the entry, never from
the applying controller's clock.
"""

from __future__ import annotations

from typing import Any

import attrs
import msgpack
from cattrs.preconf.msgpack import make_converter

from controller.coord.datatree import WatchEvent

COORD_PREFIX = b"Z"  # distinguishes coordination commands from other payloads


@attrs.frozen
class CreateSession:
    """Open a session; its id is derived from the entry's index."""

    origin: int
    seq: int
    timeout_ms: int
    password: bytes
    time_ms: int


@attrs.frozen
class CloseSession:
    """Close (client request) or expire (leader decision) a session and its ephemerals."""

    origin: int
    seq: int
    session_id: int
    expired: bool
    time_ms: int


@attrs.frozen
class Write:
    """A client write request, as raw jute bytes, with the caller's identities for ACLs.
    `extended_types` is the proposing controller's extendedTypesEnabled: it decides whether
    TTL creates are allowed, so every replica applies the entry alike whatever its own
    configuration (as ZooKeeper's leader decides when it prepares the transaction)."""

    origin: int
    seq: int
    session_id: int
    op: int
    body: bytes
    identities: tuple[tuple[str, str], ...]
    time_ms: int
    extended_types: bool = False


@attrs.frozen
class Barrier:
    """No state change: applied in log order, it tells `sync` the replica has caught up."""

    origin: int
    seq: int


@attrs.frozen
class ExpireTTL:
    """Leader decision: delete TTL nodes whose time has passed (if still expired)."""

    paths: tuple[str, ...]
    time_ms: int


Command = CreateSession | CloseSession | Write | Barrier | ExpireTTL
_TYPES: tuple[type, ...] = (CreateSession, CloseSession, Write, Barrier, ExpireTTL)
_TAG = {cls: i for i, cls in enumerate(_TYPES)}
_converter = make_converter()


def encode_command(cmd: Command) -> bytes:
    if type(cmd) is Write:
        # Hot path: positional fields, no dict keys.
        body = (
            cmd.origin,
            cmd.seq,
            cmd.session_id,
            cmd.op,
            cmd.body,
            [list(i) for i in cmd.identities],
            cmd.time_ms,
            cmd.extended_types,
        )
        packed: bytes = msgpack.packb((_TAG[Write], body), use_bin_type=True)
    else:
        packed = msgpack.packb((_TAG[type(cmd)], _converter.unstructure(cmd)), use_bin_type=True)
    return COORD_PREFIX + packed


def decode_command(data: bytes) -> Command:
    """Decode a command written by `encode_command` (entries are trusted: they were
    validated before being proposed, and the log is CRC-protected)."""
    assert data.startswith(COORD_PREFIX)
    tag, body = msgpack.unpackb(data[1:], use_list=False, raw=False)
    cls = _TYPES[tag]
    if cls is Write:
        origin, seq, session_id, op, raw, identities, time_ms, *rest = body
        ids = tuple(tuple(i) for i in identities)
        return Write(origin, seq, session_id, op, raw, ids, time_ms, bool(rest and rest[0]))
    cmd: Command = _converter.structure(body, cls)
    return cmd


@attrs.frozen
class Applied:
    """What applying one command produced (identical on every controller)."""

    origin: int
    seq: int
    zxid: int
    err: int = 0
    response: Any = None  # a controller.zk.records response record, when err == 0
    session_id: int = 0  # the session concerned (created, closed, or the writer's)
    events: tuple[WatchEvent, ...] = ()
    closed_session: bool = False
    password: bytes = b""
    timeout_ms: int = 0
