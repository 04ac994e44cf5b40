"""The controller process freezes what survives a slow full garbage collection."""

from __future__ import annotations

import gc

from controller.node.gc_pauses import GcPauseGuard


def test_slow_full_collection_freezes_survivors_and_fast_one_does_not() -> None:
    fast = GcPauseGuard(slow_s=3600.0)
    slow = GcPauseGuard(slow_s=0.0)
    for guard in (fast, slow):
        guard.install()
        guard.install()  # idempotent
    assert gc.callbacks.count(slow) == 1
    try:
        gc.collect(1)  # not a full collection: ignored
        assert slow.freezes == 0
        gc.collect()
        assert slow.freezes == 1 and fast.freezes == 0
        assert gc.get_freeze_count() > 0
        assert slow.longest_s > 0
    finally:
        gc.callbacks.remove(fast)
        gc.callbacks.remove(slow)
        gc.unfreeze()
