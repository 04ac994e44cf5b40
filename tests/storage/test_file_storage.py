"""FileStorage: round trips, truncation, torn tails, corruption, identity and snapshots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.raft.types import Entry, EntryKind, HardState, Snapshot, SnapshotMeta, make_zxid
from controller.storage import (
    ClusterIdMismatch,
    CorruptLogError,
    FileStorage,
    Recovered,
    StorageError,
)
from controller.storage.file_storage import snapshot_name
from controller.storage.records import encode_entry

CLUSTER = "c1"


def mk(index: int, term: int = 1, size: int = 20) -> Entry:
    data = bytes((index + k) % 251 for k in range(size))
    return Entry(term, index, make_zxid(term, index), EntryKind.COMMAND, data)


def mk_range(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [mk(i, term) for i in range(lo, hi + 1)]


def open_(
    d: Path, segment_bytes: int = 1 << 20, fsync: bool = False
) -> tuple[FileStorage, Recovered]:
    return FileStorage.open(
        d, cluster_id=CLUSTER, node_id=1, fsync=fsync, segment_bytes=segment_bytes
    )


def segs(d: Path) -> list[Path]:
    return sorted((d / "log").glob("*.seg"))


def snap(index: int, term: int = 1) -> Snapshot:
    meta = SnapshotMeta(index=index, term=term, zxid=make_zxid(term, index), voters=(1, 2, 3))
    return Snapshot(meta=meta, data=b"state@%d" % index)


def test_fresh_dir(tmp_path: Path) -> None:
    st, rec = open_(tmp_path / "d")
    assert rec == Recovered(HardState(), None, (), 0)
    assert st.last_index == 0 and st.first_index == 1
    st.close()


def test_roundtrip_multiple_segments(tmp_path: Path) -> None:
    st, _ = open_(tmp_path, segment_bytes=300)
    entries = mk_range(1, 50)
    st.append(entries[:7])
    st.append(entries[7:30])
    for e in entries[30:]:
        st.append([e])
    st.sync()
    st.save_hard_state(HardState(term=3, voted_for=2))
    assert st.last_index == 50
    st.close()
    assert len(segs(tmp_path)) > 3
    st2, rec = open_(tmp_path, segment_bytes=300)
    assert rec.entries == tuple(entries)
    assert rec.hard_state == HardState(term=3, voted_for=2)
    assert rec.truncated_tail_bytes == 0
    assert st2.last_index == 50
    st2.append([mk(51)])
    st2.close()
    _, rec = open_(tmp_path, segment_bytes=300)
    assert rec.entries == (*entries, mk(51))


def test_fsync_true(tmp_path: Path) -> None:
    st, _ = open_(tmp_path, segment_bytes=200, fsync=True)
    st.append(mk_range(1, 20))
    st.sync()
    st.save_hard_state(HardState(term=1, voted_for=None))
    st.save_snapshot(snap(10))
    st.compact(10)
    st.append(mk_range(21, 25))
    st.sync()
    st.close()
    _, rec = open_(tmp_path, segment_bytes=200, fsync=True)
    assert rec.entries == tuple(mk_range(11, 25))
    assert rec.hard_state == HardState(term=1)


@pytest.mark.parametrize("seg_bytes", [250, 1 << 20])
def test_truncate_overlapping_suffix(tmp_path: Path, seg_bytes: int) -> None:
    st, _ = open_(tmp_path, segment_bytes=seg_bytes)
    st.append(mk_range(1, 30))
    replacement = mk_range(12, 15, term=2)
    st.append(replacement)
    assert st.last_index == 15
    st.close()
    _, rec = open_(tmp_path, segment_bytes=seg_bytes)
    assert rec.entries == (*mk_range(1, 11), *replacement)


def test_truncate_at_segment_start(tmp_path: Path) -> None:
    st, _ = open_(tmp_path, segment_bytes=250)
    st.append(mk_range(1, 30))
    second_first = int(segs(tmp_path)[1].stem)
    st.append([mk(second_first, term=5)])
    st.close()
    _, rec = open_(tmp_path, segment_bytes=250)
    assert rec.entries == (*mk_range(1, second_first - 1), mk(second_first, term=5))


def test_torn_tail_every_offset(tmp_path: Path) -> None:
    base = tmp_path / "base"
    st, _ = open_(base)
    st.append(mk_range(1, 5))
    st.close()
    path = segs(base)[0]
    full = path.read_bytes()
    last_len = len(encode_entry(mk(5)))
    start = len(full) - last_len
    for cut in range(start, len(full)):
        d = tmp_path / f"cut{cut}"
        (d / "log").mkdir(parents=True)
        (d / "meta.json").write_bytes((base / "meta.json").read_bytes())
        (d / "log" / path.name).write_bytes(full[:cut])
        st, rec = open_(d)
        assert rec.entries == tuple(mk_range(1, 4)), cut
        assert rec.truncated_tail_bytes == cut - start
        assert st.last_index == 4
        st.append([mk(5, term=2), mk(6, term=2)])
        st.close()
        _, rec = open_(d)
        assert rec.entries == (*mk_range(1, 4), mk(5, term=2), mk(6, term=2))
        assert rec.truncated_tail_bytes == 0


def test_bad_crc_final_record_truncated(tmp_path: Path) -> None:
    st, _ = open_(tmp_path)
    st.append(mk_range(1, 5))
    st.close()
    path = segs(tmp_path)[0]
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    st, rec = open_(tmp_path)
    assert rec.entries == tuple(mk_range(1, 4))
    assert rec.truncated_tail_bytes == len(encode_entry(mk(5)))
    st.close()


def test_flipped_byte_in_middle_is_corrupt(tmp_path: Path) -> None:
    st, _ = open_(tmp_path)
    st.append(mk_range(1, 5))
    st.close()
    path = segs(tmp_path)[0]
    rec_len = len(encode_entry(mk(1)))
    offset = 2 * rec_len  # record 3
    raw = bytearray(path.read_bytes())
    raw[offset + 20] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptLogError) as info:
        open_(tmp_path)
    msg = str(info.value)
    assert path.name in msg and f"offset {offset}" in msg


def test_torn_record_in_non_last_segment_is_corrupt(tmp_path: Path) -> None:
    st, _ = open_(tmp_path, segment_bytes=250)
    st.append(mk_range(1, 30))
    st.close()
    first = segs(tmp_path)[0]
    first.write_bytes(first.read_bytes()[:-3])
    with pytest.raises(CorruptLogError, match=re.escape(first.name)):
        open_(tmp_path, segment_bytes=250)


def test_cluster_and_node_id_mismatch(tmp_path: Path) -> None:
    st, _ = open_(tmp_path)
    st.close()
    with pytest.raises(ClusterIdMismatch, match="other"):
        FileStorage.open(tmp_path, cluster_id="other", node_id=1, fsync=False)
    with pytest.raises(ClusterIdMismatch, match="node id 7"):
        FileStorage.open(tmp_path, cluster_id=CLUSTER, node_id=7, fsync=False)


def test_corrupt_hardstate(tmp_path: Path) -> None:
    st, _ = open_(tmp_path)
    st.save_hard_state(HardState(term=4, voted_for=1))
    st.close()
    hs = tmp_path / "hardstate"
    raw = bytearray(hs.read_bytes())
    raw[-1] ^= 0x55
    hs.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match="hardstate"):
        open_(tmp_path)


def test_snapshot_and_compact(tmp_path: Path) -> None:
    st, _ = open_(tmp_path, segment_bytes=250)
    st.append(mk_range(1, 40))
    n_before = len(segs(tmp_path))
    st.save_snapshot(snap(25))
    st.close()
    _, rec = open_(tmp_path, segment_bytes=250)
    assert rec.snapshot == snap(25)
    assert rec.entries == tuple(mk_range(26, 40))

    st, _ = open_(tmp_path, segment_bytes=250)
    assert st.first_index == 26 and st.last_index == 40
    st.compact(25)
    remaining = segs(tmp_path)
    assert 0 < len(remaining) < n_before
    assert int(remaining[0].stem) <= 26
    st.append(mk_range(41, 45))
    st.close()
    st, rec = open_(tmp_path, segment_bytes=250)
    assert rec.entries == tuple(mk_range(26, 45))
    assert st.first_index == 26

    # Keep only the newest two snapshot files.
    st.save_snapshot(snap(30))
    st.save_snapshot(snap(35))
    names = sorted(p.name for p in tmp_path.glob("snapshot-*.snap"))
    assert names == [snapshot_name(30), snapshot_name(35)]
    st.compact(35)
    st.close()
    st, rec = open_(tmp_path, segment_bytes=250)
    assert rec.snapshot == snap(35)
    assert rec.entries == tuple(mk_range(36, 45))
    st.close()


def test_compact_keeps_active_segment(tmp_path: Path) -> None:
    st, _ = open_(tmp_path, segment_bytes=250)
    st.append(mk_range(1, 20))
    st.save_snapshot(snap(20))
    st.compact(20)
    assert len(segs(tmp_path)) == 1
    st.append(mk_range(21, 22))
    st.close()
    st, rec = open_(tmp_path, segment_bytes=250)
    assert rec.entries == tuple(mk_range(21, 22))
    assert st.first_index == 21


def test_install_snapshot(tmp_path: Path) -> None:
    st, _ = open_(tmp_path, segment_bytes=250)
    st.append(mk_range(1, 30))
    st.install_snapshot(snap(100, term=3))
    assert segs(tmp_path) == []
    assert st.first_index == 101 and st.last_index == 100
    st.close()
    st, rec = open_(tmp_path, segment_bytes=250)
    assert rec.snapshot == snap(100, term=3)
    assert rec.entries == ()
    assert st.last_index == 100
    st.append(mk_range(101, 110, term=3))
    st.close()
    st, rec = open_(tmp_path, segment_bytes=250)
    assert rec.entries == tuple(mk_range(101, 110, term=3))
    assert st.first_index == 101
    st.close()


def test_snapshot_without_log_cleanup_discards_conflicting_log(tmp_path: Path) -> None:
    # Simulates a crash inside install_snapshot after the snapshot but before log deletion.
    st, _ = open_(tmp_path)
    st.append(mk_range(1, 30))
    st.save_snapshot(snap(10, term=9))  # term differs from the log's term at index 10
    st.close()
    st, rec = open_(tmp_path)
    assert rec.entries == ()
    assert st.last_index == 10
    st.close()


def test_corrupt_newest_snapshot_falls_back(tmp_path: Path) -> None:
    st, _ = open_(tmp_path)
    st.append(mk_range(1, 30))
    st.save_snapshot(snap(10))
    st.save_snapshot(snap(20))
    st.close()
    newest = tmp_path / snapshot_name(20)
    raw = bytearray(newest.read_bytes())
    raw[-1] ^= 1
    newest.write_bytes(bytes(raw))
    _, rec = open_(tmp_path)
    assert rec.snapshot == snap(10)
    assert rec.entries == tuple(mk_range(11, 30))


def test_gap_between_segments_is_corrupt(tmp_path: Path) -> None:
    st, _ = open_(tmp_path, segment_bytes=250)
    st.append(mk_range(1, 40))
    st.close()
    files = segs(tmp_path)
    assert len(files) >= 3
    files[1].unlink()
    with pytest.raises(CorruptLogError, match="expected"):
        open_(tmp_path, segment_bytes=250)


def test_missing_meta_with_data_refused(tmp_path: Path) -> None:
    st, _ = open_(tmp_path)
    st.append(mk_range(1, 3))
    st.close()
    (tmp_path / "meta.json").unlink()
    with pytest.raises(StorageError, match=re.escape("meta.json")):
        open_(tmp_path)
