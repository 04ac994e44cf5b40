"""Keeping CPython's full garbage collections from stalling the Raft loop.

A controller holding 100,000 partitions has over a million long-lived objects (znodes, the
metadata image); a full (generation 2) collection walks all of them and took ~0.7 s here,
longer than an election timeout: followers stopped hearing the leader and elected another.
These objects are not garbage; they are data. After a full collection that took longer than
`SLOW_FULL_COLLECTION_S`, everything that survived it is frozen (`gc.freeze()`: moved to a
generation the collector never walks), so later full collections walk only what was created
since. Freezes happen only after slow collections, which need the heap to have grown a lot
since the last one, so they are rare; a frozen object that later becomes part of unreachable
reference cycle is never reclaimed, which is the price (small: data-tree objects hold no
cycles and are freed by reference counting).
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

SLOW_FULL_COLLECTION_S = 0.05


class GcPauseGuard:
    """A `gc.callbacks` hook; see the module docstring. `install()` once per process."""

    def __init__(self, slow_s: float = SLOW_FULL_COLLECTION_S) -> None:
        self.slow_s = slow_s
        self.freezes = 0
        self.longest_s = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.longest_s = max(self.longest_s, took)
        if took > self.slow_s:
            gc.freeze()
            self.freezes += 1
            log.info(
                "full garbage collection took %.0f ms; froze %d surviving objects",
                took * 1000,
                gc.get_freeze_count(),
            )

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
