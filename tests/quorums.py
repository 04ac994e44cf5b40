"""A real controller quorum for tests, checked afterwards for logged tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.localquorum import LocalQuorum


@contextmanager
def checked_quorum(data: Path, **options: Any) -> Iterator[LocalQuorum]:
    """Start a `LocalQuorum` in `data`, wait for a leader, stop it on exit, and fail if any
    controller logged a traceback meanwhile."""
    q = LocalQuorum(data, **options)
    with q:
        q.wait_for_leader()
        yield q
    for i in q.ids:
        log = (data / f"node-{i}.log").read_text()
        assert "Traceback" not in log, f"controller {i} logged a traceback:\n{log[-4000:]}"
