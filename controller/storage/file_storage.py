"""Durable Raft storage in a data directory: hard state, snapshots and a segmented log.

Layout::

    meta.json                          {"cluster_id": ..., "node_id": ..., "format": 2}
    hardstate                          u32 crc32c(body) | msgpack {"term", "voted_for"}
    snapshot-<20-digit index>.snap     "KSNP" | u32 crc32c(body) | u64 len(body) | body,
                                       body = msgpack {index, term, zxid, voters, observers,
                                       data}
    log/<20-digit first index>.seg     records framed as described in `records`

All methods block; the node calls them from a worker thread. Writes to the log go straight to
the kernel (unbuffered file) so a crash of the process alone loses nothing; `sync` makes them
durable against power loss. With ``fsync=False`` no os.fsync is ever issued (tests,
benchmarks).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import crc32c
import msgpack

from controller import limits
from controller.raft.types import Entry, HardState, Snapshot, SnapshotMeta
from controller.storage.records import Bad, decode_at, encode_entries, find_valid_record

log = logging.getLogger(__name__)

# The data directory's format, covering what the log and snapshots hold. 2: coordination
# entries are leader-stamped typed transactions (controller/coord/commands.py, LOG_FORMAT);
# 1 held raw client requests stamped by the receiving controller and is refused.
FORMAT = 2
META_FILE = "meta.json"
HARDSTATE_FILE = "hardstate"
LOG_DIR = "log"
_SNAP_RE = re.compile(r"^snapshot-(\d{20})\.snap$")
_SEG_RE = re.compile(r"^(\d{20})\.seg$")
_SNAP_MAGIC = b"KSNP"
_SNAP_HEADER = struct.Struct(">4sIQ")  # magic, crc32c(body), len(body)
_HS_HEADER = struct.Struct(">I")  # crc32c(body)
_KEEP_SNAPSHOTS = 2


class StorageError(Exception):
    """An operating or format error; the message names the file and, where known, the offset."""


class CorruptLogError(StorageError):
    """Corruption before the tail of the log: the node must refuse to start."""


class ClusterIdMismatch(StorageError):
    """The data directory was created for another cluster id or node id."""


@attrs.frozen
class Recovered:
    """Everything read back by `FileStorage.open`.

    `entries` are contiguous and start at snapshot index + 1 (or 1 without a snapshot).
    """

    hard_state: HardState
    snapshot: Snapshot | None
    entries: tuple[Entry, ...]
    truncated_tail_bytes: int


@attrs.define
class _Segment:
    first_index: int
    path: Path
    size: int
    last_index: int  # first_index - 1 while empty


def segment_name(first_index: int) -> str:
    """File name of the segment whose first entry is `first_index`."""
    return f"{first_index:020d}.seg"


def snapshot_name(index: int) -> str:
    """File name of the snapshot covering the log up to `index`."""
    return f"snapshot-{index:020d}.snap"


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """Serialise a snapshot with its integrity header."""
    m = snapshot.meta
    body: bytes = msgpack.packb(
        {
            "index": m.index,
            "term": m.term,
            "zxid": m.zxid,
            "voters": list(m.voters),
            "observers": list(m.observers),
            "data": snapshot.data,
        },
        use_bin_type=True,
    )
    return _SNAP_HEADER.pack(_SNAP_MAGIC, crc32c.crc32c(body), len(body)) + body


def decode_snapshot(path: Path, raw: bytes) -> Snapshot:
    """Parse and verify a snapshot file's contents; raise StorageError naming `path`."""
    if len(raw) < _SNAP_HEADER.size:
        raise StorageError(f"{path}: truncated snapshot header at offset 0 ({len(raw)} bytes)")
    magic, crc, length = _SNAP_HEADER.unpack_from(raw, 0)
    if magic != _SNAP_MAGIC:
        raise StorageError(f"{path}: bad snapshot magic at offset 0: {magic!r}")
    body = raw[_SNAP_HEADER.size :]
    if len(body) != length:
        raise StorageError(
            f"{path}: snapshot body at offset {_SNAP_HEADER.size} is {len(body)} bytes, "
            f"header says {length}"
        )
    if crc32c.crc32c(body) != crc:
        raise StorageError(f"{path}: snapshot crc mismatch at offset {_SNAP_HEADER.size}")
    try:
        d = msgpack.unpackb(body, raw=False)
        meta = SnapshotMeta(
            index=_as_int(d["index"]),
            term=_as_int(d["term"]),
            zxid=_as_int(d["zxid"]),
            voters=tuple(_as_int(v) for v in d["voters"]),
            observers=tuple(_as_int(v) for v in d["observers"]),
        )
        data = d["data"]
        if not isinstance(data, bytes):
            raise TypeError("data is not bytes")
    except (ValueError, TypeError, KeyError) as exc:
        raise StorageError(f"{path}: malformed snapshot body at offset 16: {exc}") from exc
    return Snapshot(meta=meta, data=data)


def _as_int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"expected int, got {v!r}")
    return v


def encode_hard_state(hs: HardState) -> bytes:
    """Serialise a hard state with its crc."""
    body: bytes = msgpack.packb({"term": hs.term, "voted_for": hs.voted_for}, use_bin_type=True)
    return _HS_HEADER.pack(crc32c.crc32c(body)) + body


def decode_hard_state(path: Path, raw: bytes) -> HardState:
    """Parse and verify a hard state file's contents; raise StorageError naming `path`."""
    if len(raw) < _HS_HEADER.size:
        raise StorageError(f"{path}: truncated hard state at offset 0 ({len(raw)} bytes)")
    (crc,) = _HS_HEADER.unpack_from(raw, 0)
    body = raw[_HS_HEADER.size :]
    if crc32c.crc32c(body) != crc:
        raise StorageError(f"{path}: hard state crc mismatch at offset {_HS_HEADER.size}")
    try:
        d = msgpack.unpackb(body, raw=False)
        voted_for = d["voted_for"]
        return HardState(
            term=_as_int(d["term"]), voted_for=None if voted_for is None else _as_int(voted_for)
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise StorageError(f"{path}: malformed hard state at offset 4: {exc}") from exc


class FileStorage:
    """Blocking, file-backed Raft storage. Obtain one with `FileStorage.open`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        fsync: bool,
        segment_bytes: int,
        segments: list[_Segment],
        snapshot_meta: SnapshotMeta | None,
    ) -> None:
        self.data_dir = data_dir
        self._log_dir = data_dir / LOG_DIR
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self._segments = segments
        self._snapshot_index = snapshot_meta.index if snapshot_meta else 0
        self._active: BinaryIO | None = None  # open file of self._segments[-1], lazily
        # Segments written or truncated since the last sync: they all need an fsync, not
        # only the active one, because a roll can happen between two syncs.
        self._unsynced: set[Path] = set()
        self._dir_dirty = False  # segment files created or deleted since the last sync
        self._closed = False

    # ---------------------------------------------------------------- open / recovery

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        cluster_id: str,
        node_id: int,
        fsync: bool = True,
        segment_bytes: int = limits.SEGMENT_BYTES,
    ) -> tuple[FileStorage, Recovered]:
        """Open (creating if needed) `data_dir` and recover its contents."""
        assert segment_bytes > 0, segment_bytes
        data_dir = Path(data_dir)
        log_dir = data_dir / LOG_DIR
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            _check_meta(data_dir, cluster_id=cluster_id, node_id=node_id, fsync=fsync)
            log_dir.mkdir(exist_ok=True)
            _remove_leftovers(data_dir)
        except OSError as exc:
            raise StorageError(f"{data_dir}: cannot prepare data directory: {exc}") from exc

        snapshot = _load_newest_snapshot(data_dir)
        hard_state = _load_hard_state(data_dir / HARDSTATE_FILE)
        snap_meta = snapshot.meta if snapshot else None
        segments, entries, truncated = _recover_log(log_dir, snap_meta)
        storage = cls(
            data_dir,
            fsync=fsync,
            segment_bytes=segment_bytes,
            segments=segments,
            snapshot_meta=snap_meta,
        )
        if truncated and segments:
            # The cut must be durable before we append behind it.
            storage._unsynced.add(segments[-1].path)
            storage.sync()
        return storage, Recovered(
            hard_state=hard_state,
            snapshot=snapshot,
            entries=tuple(entries),
            truncated_tail_bytes=truncated,
        )

    # ---------------------------------------------------------------- introspection

    @property
    def last_index(self) -> int:
        """Index of the last entry in the log, or the snapshot index if the log is behind."""
        log_last = self._segments[-1].last_index if self._segments else 0
        return max(log_last, self._snapshot_index)

    @property
    def first_index(self) -> int:
        """First index not covered by the snapshot (entries below may still be on disk)."""
        return self._snapshot_index + 1

    # ---------------------------------------------------------------- log writes

    def append(self, entries: Sequence[Entry]) -> None:
        """Write `entries` to the log without fsync, truncating a conflicting suffix first."""
        if not entries:
            return
        first = entries[0].index
        assert first > self._snapshot_index, (first, self._snapshot_index)
        if first <= self.last_index:
            self._truncate_from(first)
        assert first == self.last_index + 1, (first, self.last_index)
        prev = first - 1
        for e in entries:
            assert e.index == prev + 1, f"non-contiguous append: {e.index} after {prev}"
            prev = e.index

        i, n = 0, len(entries)
        while i < n:
            seg = self._writable_segment(entries[i].index)
            parts: list[bytes] = []
            # Fill the segment up to segment_bytes, then roll; one write per segment touched.
            j, added = encode_entries(entries, parts, i, self._segment_bytes - seg.size)
            self._write_active(seg, b"".join(parts))
            seg.size += added
            seg.last_index = entries[j - 1].index
            i = j

    def sync(self) -> None:
        """Make every append so far durable (fsync), or do nothing beyond writes if fsync=False.

        Writes are unbuffered, so with fsync=False the data has already reached the kernel.
        """
        if not self._fsync:
            self._unsynced.clear()
            self._dir_dirty = False
            return
        for path in sorted(self._unsynced):
            try:
                if self._active is not None and self._segments[-1].path == path:
                    os.fsync(self._active.fileno())
                else:
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            except OSError as exc:
                raise StorageError(f"{path}: fsync failed: {exc}") from exc
        self._unsynced.clear()
        if self._dir_dirty:
            _fsync_dir(self._log_dir)
            self._dir_dirty = False

    def _writable_segment(self, next_index: int) -> _Segment:
        if self._segments:
            seg = self._segments[-1]
            if seg.size < self._segment_bytes:
                assert seg.last_index + 1 == next_index, (seg, next_index)
                return seg
            self._close_active()
        path = self._log_dir / segment_name(next_index)
        seg = _Segment(first_index=next_index, path=path, size=0, last_index=next_index - 1)
        try:
            # "xb" would fail on a stale file of the same name; a leftover empty or
            # fully-superseded file can only exist if recovery let it through, so overwrite.
            path.write_bytes(b"")
        except OSError as exc:
            raise StorageError(f"{path}: cannot create segment: {exc}") from exc
        self._segments.append(seg)
        self._dir_dirty = True
        return seg

    def _write_active(self, seg: _Segment, data: bytes) -> None:
        if self._active is None:
            try:
                self._active = open(seg.path, "ab", buffering=0)  # noqa: SIM115 - kept open
            except OSError as exc:
                raise StorageError(f"{seg.path}: cannot open segment: {exc}") from exc
        view = memoryview(data)
        written = 0
        try:
            # Raw files may in principle write short; loop so a record is never half-written
            # by us (only by a crash).
            while written < len(view):
                n = self._active.write(view[written:])
                if n is None or n <= 0:
                    raise OSError("short write")
                written += n
        except OSError as exc:
            raise StorageError(
                f"{seg.path}: write failed at offset {seg.size + written}: {exc}"
            ) from exc
        self._unsynced.add(seg.path)

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None

    def _truncate_from(self, index: int) -> None:
        """Drop every log entry with index >= `index` (rare: a follower's log conflict)."""
        self._close_active()
        k = len(self._segments) - 1
        while k > 0 and self._segments[k].first_index > index:
            k -= 1
        seg = self._segments[k]
        assert seg.first_index <= index <= seg.last_index, (seg, index)
        for later in self._segments[k + 1 :]:
            self._unlink(later.path)
        del self._segments[k + 1 :]
        offset = _offset_of(seg, index)
        try:
            os.truncate(seg.path, offset)
        except OSError as exc:
            raise StorageError(f"{seg.path}: truncate to offset {offset} failed: {exc}") from exc
        seg.size = offset
        seg.last_index = index - 1
        self._unsynced.add(seg.path)

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"{path}: cannot delete: {exc}") from exc
        self._unsynced.discard(path)
        self._dir_dirty = True

    # ---------------------------------------------------------------- hard state, snapshots

    def save_hard_state(self, hs: HardState) -> None:
        """Durably replace the hard state (tmp file, fsync, rename, directory fsync)."""
        _atomic_write(self.data_dir / HARDSTATE_FILE, encode_hard_state(hs), fsync=self._fsync)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Durably write a snapshot, keeping only the newest two snapshot files."""
        index = snapshot.meta.index
        assert index >= self._snapshot_index, (index, self._snapshot_index)
        path = self.data_dir / snapshot_name(index)
        _atomic_write(path, encode_snapshot(snapshot), fsync=self._fsync, tmp_suffix=".part")
        self._snapshot_index = index
        # Keep one older snapshot as a fallback in case the newest is damaged later.
        for old in _snapshot_files(self.data_dir)[_KEEP_SNAPSHOTS:]:
            try:
                old[1].unlink(missing_ok=True)
            except OSError as exc:
                raise StorageError(f"{old[1]}: cannot delete old snapshot: {exc}") from exc

    def compact(self, index: int) -> None:
        """Delete segments whose entries are all <= `index`; a durable snapshot must cover it."""
        assert index <= self._snapshot_index, (index, self._snapshot_index)
        # Never the active (last) segment: it is where the next append goes.
        drop = 0
        while drop < len(self._segments) - 1 and self._segments[drop].last_index <= index:
            drop += 1
        if not drop:
            return
        for seg in self._segments[:drop]:
            self._unlink(seg.path)
        del self._segments[:drop]
        if self._fsync:
            _fsync_dir(self._log_dir)

    def install_snapshot(self, snapshot: Snapshot) -> None:
        """Follower: store `snapshot` durably, then discard the whole log."""
        self.save_snapshot(snapshot)
        # The snapshot is durable first: a crash before the deletions leaves a log that
        # recovery reconciles against the snapshot (see _recover_log).
        self._close_active()
        for seg in self._segments:
            self._unlink(seg.path)
        self._segments.clear()
        self._unsynced.clear()
        if self._fsync:
            _fsync_dir(self._log_dir)
        self._dir_dirty = False

    def close(self) -> None:
        """Release the open segment file. Does not sync; call `sync` first if needed."""
        if not self._closed:
            self._close_active()
            self._closed = True


# -------------------------------------------------------------------- helpers


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"{path}: directory fsync failed: {exc}") from exc


def _atomic_write(path: Path, payload: bytes, *, fsync: bool, tmp_suffix: str = ".tmp") -> None:
    tmp = path.with_name(path.name + tmp_suffix)
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"{path}: atomic write failed: {exc}") from exc
    if fsync:
        _fsync_dir(path.parent)


def _check_meta(data_dir: Path, *, cluster_id: str, node_id: int, fsync: bool) -> None:
    meta_path = data_dir / META_FILE
    if not meta_path.exists():
        # Refuse to adopt a directory that already holds Raft state without an identity:
        # it might belong to another node.
        leftovers = [
            p.name
            for p in data_dir.iterdir()
            if p.name == HARDSTATE_FILE
            or _SNAP_RE.match(p.name)
            or (p.name == LOG_DIR and any(p.iterdir()))
        ]
        if leftovers:
            raise StorageError(f"{meta_path}: missing, but the directory holds {leftovers}")
        meta = {"cluster_id": cluster_id, "node_id": node_id, "format": FORMAT}
        _atomic_write(meta_path, json.dumps(meta).encode(), fsync=fsync)
        return
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise StorageError(f"{meta_path}: unreadable at offset 0: {exc}") from exc
    if not isinstance(meta, dict):
        raise StorageError(f"{meta_path}: unsupported content: {meta!r}")
    if meta.get("format") != FORMAT:
        raise StorageError(
            f"{meta_path}: data directory format {json.dumps(meta.get('format'))}, this "
            "controller reads "
            f"format {FORMAT}; it is never misread: start from an empty data directory or "
            "run the release that wrote it"
        )
    if meta.get("cluster_id") != cluster_id or meta.get("node_id") != node_id:
        raise ClusterIdMismatch(
            f"{data_dir} belongs to cluster id {meta.get('cluster_id')!r} node id "
            f"{meta.get('node_id')!r}, but this process was started with cluster id "
            f"{cluster_id!r} node id {node_id!r}"
        )


def _remove_leftovers(data_dir: Path) -> None:
    # Half-written temporaries of atomic writes that never got renamed.
    for p in data_dir.iterdir():
        if p.name.endswith((".tmp", ".part")):
            p.unlink(missing_ok=True)


def _snapshot_files(data_dir: Path) -> list[tuple[int, Path]]:
    """Snapshot files, newest first."""
    found = []
    for p in data_dir.iterdir():
        m = _SNAP_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    found.sort(reverse=True)
    return found


def _load_newest_snapshot(data_dir: Path) -> Snapshot | None:
    for index, path in _snapshot_files(data_dir):
        try:
            snap = decode_snapshot(path, path.read_bytes())
            if snap.meta.index != index:
                raise StorageError(f"{path}: snapshot claims index {snap.meta.index}")
        except (StorageError, OSError) as exc:
            # An older snapshot may still be usable; if the log was compacted past it,
            # recovery reports the gap as corruption.
            log.warning("ignoring unusable snapshot %s: %s", path, exc)
            continue
        return snap
    return None


def _load_hard_state(path: Path) -> HardState:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return HardState()
    except OSError as exc:
        raise StorageError(f"{path}: unreadable at offset 0: {exc}") from exc
    return decode_hard_state(path, raw)


def _offset_of(seg: _Segment, index: int) -> int:
    """Byte offset of the record for `index` in `seg` (rescans; truncation is rare)."""
    buf = seg.path.read_bytes()
    pos = 0
    while pos < len(buf):
        r = decode_at(buf, pos)
        if isinstance(r, Bad):
            raise CorruptLogError(f"{seg.path}: corrupt record at offset {pos}: {r.reason}")
        if r.entry.index == index:
            return pos
        pos = r.end
    raise StorageError(f"{seg.path}: index {index} not found (segment is {len(buf)} bytes)")


def _recover_log(
    log_dir: Path, snap: SnapshotMeta | None
) -> tuple[list[_Segment], list[Entry], int]:
    """Scan all segments; return them, the entries after the snapshot and the bytes cut."""
    paths: list[tuple[int, Path]] = []
    for p in log_dir.iterdir():
        m = _SEG_RE.match(p.name)
        if m:
            paths.append((int(m.group(1)), p))
    paths.sort()
    # A crash right after creating a new segment leaves it empty; it carries nothing, and
    # removing it lets the segment before it be treated as the tail.
    while paths and paths[-1][1].stat().st_size == 0:
        paths.pop()[1].unlink()

    snap_index = snap.index if snap else 0
    segments: list[_Segment] = []
    entries: list[Entry] = []
    truncated = 0
    term_at_snap: int | None = None
    expected: int | None = None
    for n, (first, path) in enumerate(paths):
        if expected is not None and first != expected:
            raise CorruptLogError(
                f"{path}: corrupt record at offset 0: segment starts at index {first}, "
                f"expected {expected} (gap or overlap between segments)"
            )
        expected = first
        try:
            buf = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"{path}: unreadable at offset 0: {exc}") from exc
        pos = 0
        while pos < len(buf):
            r = decode_at(buf, pos)
            if isinstance(r, Bad):
                is_last = n == len(paths) - 1
                if is_last and find_valid_record(buf, pos + 1, expected) is None:
                    cut = len(buf) - pos
                    log.warning(
                        "%s: truncating %d bytes of torn/corrupt tail at offset %d: %s",
                        path,
                        cut,
                        pos,
                        r.reason,
                    )
                    try:
                        os.truncate(path, pos)
                    except OSError as exc:
                        raise StorageError(f"{path}: truncate to offset {pos} failed") from exc
                    truncated += cut
                    break
                raise CorruptLogError(f"{path}: corrupt record at offset {pos}: {r.reason}")
            e = r.entry
            if e.index != expected:
                raise CorruptLogError(
                    f"{path}: corrupt record at offset {pos}: index {e.index}, expected {expected}"
                )
            if e.index == snap_index:
                term_at_snap = e.term
            elif e.index > snap_index:
                entries.append(e)
            expected += 1
            pos = r.end
        segments.append(_Segment(first, path, pos, expected - 1))

    if not segments or segments[-1].last_index < segments[0].first_index:
        # No records at all (possibly one empty segment left after a tail cut).
        if segments and snap is None and segments[0].first_index != 1:
            raise CorruptLogError(
                f"{segments[0].path}: corrupt record at offset 0: log starts at index "
                f"{segments[0].first_index} but there is no snapshot"
            )
        if segments and segments[0].first_index != snap_index + 1:
            _discard(segments, "empty log segment does not follow the snapshot")
            return [], [], truncated
        return segments, entries, truncated

    log_first, log_last = segments[0].first_index, segments[-1].last_index
    if log_first > snap_index + 1:
        raise CorruptLogError(
            f"{segments[0].path}: corrupt record at offset 0: log starts at index {log_first} "
            f"but the snapshot only covers up to {snap_index}"
        )
    if snap is not None and (
        log_last < snap.index or (term_at_snap is not None and term_at_snap != snap.term)
    ):
        # install_snapshot crashed between saving the snapshot and deleting the log; the old
        # log conflicts with (or is behind) the snapshot, so Raft says discard it entirely.
        _discard(segments, f"log (last index {log_last}) does not match snapshot {snap}")
        return [], [], truncated
    return segments, entries, truncated


def _discard(segments: list[_Segment], why: str) -> None:
    log.warning("discarding %d log segment(s): %s", len(segments), why)
    for seg in segments:
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()
