"""Election counters and readiness across a leader's death (its own quorum: destructive)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.observe.helpers import get, metric, read_events, wait_for
from tests.quorums import checked_quorum

pytestmark = pytest.mark.timeout(120)


def test_election_moves_counters_and_readiness(tmp_path: Path) -> None:
    with checked_quorum(tmp_path, fsync=False) as q:
        q.wait_until_ready()
        old = int(q.wait_for_leader()["node_id"])
        survivors = [i for i in q.ids if i != old]
        before = {i: metric(q.admin_url(i), "kraft_quorum_elections_total") for i in survivors}
        epoch = metric(q.admin_url(survivors[0]), "kafka_raft_current_epoch")
        started = sum(
            metric(q.admin_url(i), "kraft_raft_elections_started_total") for i in survivors
        )
        q.kill(old, signal.SIGKILL)
        new = int(q.wait_for_leader(exclude=old)["node_id"])
        for i in survivors:
            base = q.admin_url(i)
            wait_for(
                "the election counted",
                lambda b=base, i=i: metric(b, "kraft_quorum_elections_total") > before[i],
            )
            wait_for(
                "the new leader known", lambda b=base: metric(b, "kafka_raft_current_leader") == new
            )
            assert metric(base, "kafka_raft_current_epoch") > epoch
            wait_for("ready", lambda b=base: get(b + "readyz")[0] == 200)
        assert (
            sum(metric(q.admin_url(i), "kraft_raft_elections_started_total") for i in survivors)
            > started
        )
        events = read_events(
            q.admin_url(survivors[0]) + "api/events",
            lambda e: e["kind"] == "election" and e["leader"] == new,
        )
        assert events[-1]["term"] == metric(q.admin_url(survivors[0]), "kafka_raft_current_epoch")
        # Alone, the last controller knows no leader: not ready, though alive.
        q.kill(new, signal.SIGKILL)
        last = next(i for i in survivors if i != new)
        base = q.admin_url(last)
        wait_for("not ready without a leader", lambda: get(base + "readyz")[0] == 503)
        assert get(base + "healthz")[0] == 200
