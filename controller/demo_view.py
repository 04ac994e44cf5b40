"""Tables `kraft demo` shows: controllers, brokers and partition leaders (rich)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from rich.console import Group
from rich.table import Table
from rich.text import Text

from controller.metadata.decisions import leader_counts
from controller.metadata.image import MetadataImage
from controller.metadata.records import NO_LEADER


@attrs.frozen
class StepResult:
    """One demo step's measured time against its deadline (seconds)."""

    name: str
    seconds: float
    deadline: float
    ok: bool
    detail: str = ""


def controllers_table(
    statuses: Mapping[int, dict[str, Any] | None], image: MetadataImage, pids: Mapping[int, int]
) -> Table:
    active = image.controller.brokerid if image.controller else None
    table = Table("Controller", "Pid", "Role", "Term", "CommitIndex", "Active", title="Controllers")
    for node_id in sorted(statuses):
        status = statuses[node_id]
        pid = str(pids[node_id]) if node_id in pids else "-"
        if status is None:
            table.add_row(str(node_id), pid, Text("down", style="red"), "-", "-", "")
            continue
        marker = f"yes (epoch {image.controller_epoch})" if node_id == active else ""
        table.add_row(
            str(node_id),
            pid,
            status["role"],
            str(status["term"]),
            str(status["commit_index"]),
            Text(marker, style="bold green") if marker else "",
        )
    return table


def brokers_table(image: MetadataImage, expected: Mapping[int, str]) -> Table:
    led = leader_counts(image)
    table = Table("Broker", "Rack", "Address", "Epoch", "State", "Leads", title="Brokers")
    for broker_id in sorted(set(expected) | set(image.brokers)):
        broker = image.brokers.get(broker_id)
        if broker is None:
            table.add_row(
                str(broker_id), expected.get(broker_id, "-"), "-", "-", Text("offline", "red"), "0"
            )
            continue
        reg = broker.registration
        table.add_row(
            str(broker_id),
            reg.rack or "-",
            f"{reg.host}:{reg.port}",
            f"0x{broker.epoch:x}",
            Text("live", style="green"),
            str(led.get(broker_id, 0)),
        )
    return table


def partitions_table(image: MetadataImage, topic: str) -> Table:
    table = Table(
        "Partition", "Leader", "LeaderEpoch", "Replicas", "Isr", "Status", title=f"Topic {topic}"
    )
    info = image.topics.get(topic)
    if info is None:
        return table
    for p in sorted(info.assignment):
        replicas = info.assignment[p]
        state = info.partitions.get(p)
        if state is None:
            table.add_row(str(p), "-", "-", _ids(replicas), "-", Text("pending", "yellow"))
            continue
        flag = Text("")
        if state.leader == NO_LEADER:
            flag = Text("OFFLINE", style="bold red")
        elif len(state.isr) < len(replicas):
            flag = Text("under-replicated", style="yellow")
        elif state.leader != replicas[0]:
            flag = Text("not preferred", style="cyan")
        table.add_row(
            str(p),
            str(state.leader),
            str(state.leader_epoch),
            _ids(replicas),
            _ids(state.isr),
            flag,
        )
    return table


def snapshot(
    statuses: Mapping[int, dict[str, Any] | None],
    image: MetadataImage,
    pids: Mapping[int, int],
    brokers: Mapping[int, str],
    topic: str,
) -> Group:
    return Group(
        controllers_table(statuses, image, pids),
        brokers_table(image, brokers),
        partitions_table(image, topic),
    )


def summary_table(results: list[StepResult]) -> Table:
    table = Table("Step", "Measured", "Deadline", "Result", title="Summary")
    for step in results:
        table.add_row(
            step.name,
            f"{step.seconds:.2f} s",
            f"{step.deadline:.1f} s",
            Text("ok", "green") if step.ok else Text(f"MISSED {step.detail}", "bold red"),
        )
    return table


def _ids(ids: Any) -> str:
    return ",".join(str(i) for i in ids)
