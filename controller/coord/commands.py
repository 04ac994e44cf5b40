"""Log entries of the coordination service: typed transactions stamped by the leader.

A controller that receives a client's write decodes the jute request once and builds a typed
command (`Write` carries the request record itself, e.g. a `SetDataRequest`); the leader
stamps each command with *its own* wall-clock time and its extendedTypesEnabled setting when
it proposes it (`stamp`), as ZooKeeper's leader turns a request into a transaction in its
PrepRequestProcessor. Applying an entry is then a deterministic replay on every controller:
no jute decoding, and no follower's clock ever enters the data (ctime, mtime, TTLs).

Every command names its `origin` controller and a per-origin `seq`, so the controller that
received the client's request can match the applied entry to the waiting request, whichever
controller proposed it.

Entry layout (format `LOG_FORMAT`)::

    b"Z" | u8 format | i64 leader time (ms since the epoch) | u8 flags | msgpack command

An entry of any other format is refused loudly (`EntryFormatError`), never misread; data
directories of an older format are refused at start (controller/storage/file_storage.py).
"""

from __future__ import annotations

import struct
from typing import Any

import attrs
import cattrs
import msgpack
from cattrs.preconf.msgpack import make_converter

from controller.coord.datatree import WatchEvent
from controller.zk import records
from controller.zk.records import REQUEST_RECORDS, MultiRequest

COORD_PREFIX = b"Z"  # distinguishes coordination entries from other payloads
LOG_FORMAT = 2  # 1: raw jute requests stamped by the receiving controller (refused)
_HEADER = struct.Struct(">BqB")  # format, leader time in ms, flags
HEADER_BYTES = len(COORD_PREFIX) + _HEADER.size
FLAG_EXTENDED_TYPES = 1  # the leader's extendedTypesEnabled: TTL creates are allowed


class EntryFormatError(Exception):
    """A coordination entry of a format this controller does not read."""


@attrs.frozen
class CreateSession:
    """Open a session; its id is derived from the entry's index."""

    origin: int
    seq: int
    timeout_ms: int
    password: bytes


@attrs.frozen
class CloseSession:
    """Close (client request) or expire (leader decision) a session and its ephemerals."""

    origin: int
    seq: int
    session_id: int
    expired: bool


@attrs.frozen
class Write:
    """A client write: the decoded request record of `op` (`CreateRequest`,
    `SetDataRequest`, `MultiRequest`, ...) with the caller's identities for ACL checks."""

    origin: int
    seq: int
    session_id: int
    op: int
    request: Any
    identities: tuple[tuple[str, str], ...]


@attrs.frozen
class Barrier:
    """No state change: applied in log order, it tells `sync` the replica has caught up."""

    origin: int
    seq: int


@attrs.frozen
class ExpireTTL:
    """Leader decision: delete TTL nodes whose time has passed (re-checked at apply
    against the entry's leader time)."""

    paths: tuple[str, ...]


Command = CreateSession | CloseSession | Write | Barrier | ExpireTTL
_TYPES: tuple[type, ...] = (CreateSession, CloseSession, Write, Barrier, ExpireTTL)
_TAG = {cls: i for i, cls in enumerate(_TYPES)}
_WRITE_TAG = _TAG[Write]
_converter = make_converter()

# Request records travel as positional tuples (cattrs' AS_TUPLE strategy); a multi's ops as
# (opcode, fields) pairs, the opcode choosing the record class as on the wire.
_records = cattrs.Converter(unstruct_strat=cattrs.UnstructureStrategy.AS_TUPLE)
for _cls in {*REQUEST_RECORDS.values(), records.ACL, records.Id}:
    attrs.resolve_types(_cls)


def _unstructure_multi(req: MultiRequest) -> list[Any]:
    return [(op, _records.unstructure(rec)) for op, rec in req.ops]


def _structure_multi(raw: Any, _: type) -> MultiRequest:
    return MultiRequest([(op, _records.structure(f, REQUEST_RECORDS[op])) for op, f in raw])


_records.register_unstructure_hook(MultiRequest, _unstructure_multi)
_records.register_structure_hook(MultiRequest, _structure_multi)


@attrs.frozen
class Stamp:
    """What the leader adds to a command when proposing it."""

    time_ms: int
    extended_types: bool = False


def encode_command(cmd: Command) -> bytes:
    """The command alone (what a follower forwards to the leader); see `stamp`."""
    if type(cmd) is Write:
        # Hot path: positional fields, no dict keys.
        fields = (
            cmd.origin,
            cmd.seq,
            cmd.session_id,
            cmd.op,
            _records.unstructure(cmd.request),
            cmd.identities,
        )
        packed: bytes = msgpack.packb((_WRITE_TAG, fields), use_bin_type=True)
        return packed
    packed = msgpack.packb((_TAG[type(cmd)], _converter.unstructure(cmd)), use_bin_type=True)
    return packed


def stamp(command: bytes, at: Stamp) -> bytes:
    """The log entry for an encoded command, stamped with the leader's time and settings."""
    flags = FLAG_EXTENDED_TYPES if at.extended_types else 0
    return COORD_PREFIX + _HEADER.pack(LOG_FORMAT, at.time_ms, flags) + command


def decode_entry(data: bytes) -> tuple[Stamp, Command]:
    """Decode an entry written by `stamp` (entries are trusted: they were validated before
    being proposed, and the log is CRC-protected). Raises `EntryFormatError` for an entry
    of another format."""
    assert data.startswith(COORD_PREFIX)
    if len(data) < HEADER_BYTES or data[1] != LOG_FORMAT:
        found = data[1] if len(data) > 1 else None
        raise EntryFormatError(
            f"coordination entry of format {found}, this controller reads format {LOG_FORMAT}"
        )
    _, time_ms, flags = _HEADER.unpack_from(data, 1)
    tag, body = msgpack.unpackb(data[HEADER_BYTES:], use_list=False, raw=False)
    at = Stamp(time_ms, bool(flags & FLAG_EXTENDED_TYPES))
    cls = _TYPES[tag]
    if cls is Write:
        origin, seq, session_id, op, fields, identities = body
        request = _records.structure(fields, REQUEST_RECORDS[op])
        ids = tuple(tuple(i) for i in identities)
        return at, Write(origin, seq, session_id, op, request, ids)
    cmd: Command = _converter.structure(body, cls)
    return at, cmd


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
