"""`kraft quorum status` as one controller sees it: role, term, log positions, each member's
progress and contact, and its components' figures (JSON-friendly)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controller import limits
from controller.raft.types import NodeId

if TYPE_CHECKING:
    from controller.node.server import ControllerNode


def node_status(node: ControllerNode) -> dict[str, Any]:
    """The data behind `kraft quorum status`; `last_contact_ms` is in milliseconds."""
    core = node.core
    progress = core.progress()
    tick_ms = limits.TICK_MS

    def member(nid: NodeId) -> dict[str, Any]:
        addr = {**node.config.voters, **node.config.observers}[nid]
        client = (
            node.client_address if nid == node.node_id else node.peer_client_addresses.get(nid, "")
        )
        info: dict[str, Any] = {
            "id": nid,
            "raft_address": str(addr),
            "client_address": client,
            "log_end": None,
            "lag": None,
            "last_contact_ms": None,
        }
        if nid == node.node_id:
            info.update(log_end=core.last_index, lag=0, last_contact_ms=0)
            info["lag"] = max(0, core.commit_index - core.last_index)
        elif nid in progress:
            pr = progress[nid]
            info.update(
                log_end=pr.match_index,
                lag=max(0, core.last_index - pr.match_index),
                last_contact_ms=pr.last_contact_ticks * tick_ms,
            )
        return info

    return {
        "node_id": node.node_id,
        "role": core.role,
        "leader_id": core.leader_id,
        "leader_client_address": node.leader_client_address(),
        "term": core.term,
        "commit_index": core.commit_index,
        "applied_index": core.applied_index,
        "last_index": core.last_index,
        "first_index": core.first_index,
        "elections_started": core.elections_started(),
        "leader_changes": node.leader_changes,
        "fsyncs": node.fsyncs,
        "inline_turns": node.inline_turns,
        "loop_turns": node.loop_turns,
        "snapshots_installed": node.snapshots_installed,
        "snapshots_taken": node.snapshots_taken,
        "voters": [member(v) for v in core.voters],
        "observers": [member(o) for o in core.observers],
        "state_machine": node.sm.stats(),
        "service": node.service.stats() if node.service is not None else {},
        **{name: source() for name, source in node.status_sources.items()},
    }
