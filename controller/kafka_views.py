"""What the `kraft topics|brokers|partitions` commands print: JSON-ready dicts built from a
`MetadataImage`, and rich tables of them (pure apart from printing to a console)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from controller.metadata import records as r
from controller.metadata.decisions import leader_counts
from controller.metadata.image import MetadataImage, TopicImage


def hex_zxid(zxid: int) -> str:
    return f"0x{zxid:x}"


def partition_entry(image: MetadataImage, topic: TopicImage, partition: int) -> dict[str, Any]:
    """One partition as `describe --json` shows it. A partition without a state znode yet
    is `pending` (leader -1); `offline` means its state names no live leader."""
    replicas = list(topic.replicas(partition))
    state = topic.partitions.get(partition)
    if state is None:
        return {
            "partition": partition,
            "leader": r.NO_LEADER,
            "leader_epoch": -1,
            "replicas": replicas,
            "isr": [],
            "under_replicated": False,
            "offline": False,
            "pending": True,
        }
    return {
        "partition": partition,
        "leader": state.leader,
        "leader_epoch": state.leader_epoch,
        "replicas": replicas,
        "isr": list(state.isr),
        "under_replicated": len(state.isr) < len(replicas),
        "offline": not image.is_live(state.leader),
        "pending": False,
    }


def topic_entry(
    image: MetadataImage,
    name: str,
    *,
    under_replicated: bool = False,
    unavailable: bool = False,
) -> dict[str, Any]:
    """One topic as `describe --json` shows it; the flags keep only matching partitions
    (`unavailable`: offline or pending)."""
    topic = image.topics[name]
    partitions = [partition_entry(image, topic, p) for p in sorted(topic.assignment)]
    if under_replicated or unavailable:
        partitions = [
            p
            for p in partitions
            if (under_replicated and p["under_replicated"])
            or (unavailable and (p["offline"] or p["pending"]))
        ]
    first = topic.assignment.get(0) or next(iter(topic.assignment.values()), ())
    return {
        "name": name,
        "topic_id": topic.topic_id,
        "partition_count": len(topic.assignment),
        "replication_factor": len(first),
        "config": dict(image.topic_config(name)),
        "marked_for_deletion": name in image.delete_requests,
        "partitions": partitions,
    }


def topics_json(
    image: MetadataImage,
    names: Collection[str],
    *,
    under_replicated: bool = False,
    unavailable: bool = False,
) -> dict[str, Any]:
    """`{"topics": [...]}`; with a filter, topics with no matching partition are left out."""
    entries = [
        topic_entry(image, name, under_replicated=under_replicated, unavailable=unavailable)
        for name in sorted(names)
        if name in image.topics
    ]
    if under_replicated or unavailable:
        entries = [e for e in entries if e["partitions"]]
    return {"topics": entries}


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, ids)) if ids else "-"


def _status(p: dict[str, Any]) -> Text:
    if p["pending"]:
        return Text("pending (no state yet)", style="dim")
    flags = []
    if p["offline"]:
        flags.append(Text("offline", style="bold red"))
    if p["under_replicated"]:
        flags.append(Text("under-replicated", style="yellow"))
    return Text(", ").join(flags)


def print_topics(console: Console, data: dict[str, Any]) -> None:
    """Like kafka-topics.sh --describe: a summary line per topic, then its partitions."""
    for entry in data["topics"]:
        configs = ",".join(f"{k}={v}" for k, v in sorted(entry["config"].items()))
        deleting = "  (marked for deletion)" if entry["marked_for_deletion"] else ""
        console.print(
            f"Topic: {entry['name']}  TopicId: {entry['topic_id'] or '-'}  "
            f"PartitionCount: {entry['partition_count']}  "
            f"ReplicationFactor: {entry['replication_factor']}  Configs: {configs}{deleting}",
            highlight=False,
            markup=False,
        )
        table = Table("Topic", "Partition", "Leader", "LeaderEpoch", "Replicas", "Isr", "Status")
        for p in entry["partitions"]:
            pending = p["pending"]
            leader = "-" if pending else ("none" if p["leader"] < 0 else str(p["leader"]))
            table.add_row(
                entry["name"],
                str(p["partition"]),
                Text(leader, style="bold red" if p["offline"] else ""),
                "-" if pending else str(p["leader_epoch"]),
                _ids(p["replicas"]),
                "-" if pending else _ids(p["isr"]),
                _status(p),
            )
        console.print(table)


def brokers_json(image: MetadataImage) -> dict[str, Any]:
    """Registered brokers (live) and brokers named in an assignment but not registered
    (offline), with the partitions each leads, and the active controller."""
    counts = leader_counts(image)
    assigned = {b for t in image.topics.values() for rs in t.assignment.values() for b in rs}
    out = []
    for broker_id in sorted(set(image.brokers) | assigned):
        broker = image.brokers.get(broker_id)
        if broker is None:
            out.append(
                {
                    "id": broker_id,
                    "rack": None,
                    "host": None,
                    "port": None,
                    "epoch": None,
                    "state": "offline",
                    "leader_of": counts.get(broker_id, 0),
                }
            )
            continue
        reg = broker.registration
        out.append(
            {
                "id": broker_id,
                "rack": reg.rack,
                "host": reg.host,
                "port": reg.port,
                "epoch": broker.epoch,
                "state": "live",
                "leader_of": counts.get(broker_id, 0),
            }
        )
    controller = None
    if image.controller is not None:
        controller = {"id": image.controller.brokerid, "epoch": image.controller_epoch}
    return {"controller": controller, "brokers": out}


def print_brokers(console: Console, data: dict[str, Any]) -> None:
    controller = data["controller"]
    if controller is None:
        caption = "no active controller"
    else:
        caption = f"active controller: {controller['id']} (controller epoch {controller['epoch']})"
    table = Table("Id", "Rack", "Address", "Epoch", "State", "Leaders", caption=caption)
    for b in data["brokers"]:
        live = b["state"] == "live"
        table.add_row(
            str(b["id"]),
            b["rack"] or "-",
            f"{b['host']}:{b['port']}" if live else "-",
            f"{b['epoch']} ({hex_zxid(b['epoch'])})" if live else "-",
            Text(b["state"], style="green" if live else "bold red"),
            str(b["leader_of"]),
        )
    console.print(table)


def print_broker_status(console: Console, status: dict[str, Any]) -> None:
    """A broker's answer to the status request: identity, roles, partition view."""
    epoch = status.get("epoch")
    shown_epoch = "-" if epoch is None else f"{epoch} ({hex_zxid(epoch)})"
    console.print(
        f"Broker: {status.get('broker_id')}  Rack: {status.get('rack') or '-'}  "
        f"Epoch: {shown_epoch}  State: {status.get('state')}  "
        f"MetadataZxid: {status.get('metadata_zxid')}",
        highlight=False,
        markup=False,
    )
    for label, key in (("LeaderOf", "leader_of"), ("FollowerOf", "follower_of")):
        names = status.get(key) or []
        console.print(f"{label}: {', '.join(names) or '-'}", highlight=False, markup=False)
    me = status.get("broker_id")
    followers = set(status.get("follower_of") or [])
    table = Table("Partition", "Leader", "LeaderEpoch", "Isr", "Replicas", "Zxid", "Role")
    for name, p in (status.get("partitions") or {}).items():
        role = "leader" if p["leader"] == me else "follower" if name in followers else "-"
        table.add_row(
            name,
            "none" if p["leader"] < 0 else str(p["leader"]),
            str(p["leader_epoch"]),
            _ids(p["isr"]),
            _ids(p.get("replicas", [])),
            p["zxid"],
            role,
        )
    console.print(table)


def election_json(
    before: MetadataImage, after: MetadataImage, refs: list[tuple[str, int]]
) -> dict[str, Any]:
    """The leaders of the partitions a preferred election covered, before and after."""
    out = []
    for topic_name, partition in refs:
        topic = after.topics.get(topic_name)
        if topic is None:
            continue
        state = topic.partitions.get(partition)
        old_topic = before.topics.get(topic_name)
        old = old_topic.partitions.get(partition) if old_topic is not None else None
        replicas = topic.replicas(partition)
        preferred = replicas[0] if replicas else r.NO_LEADER
        leader = state.leader if state is not None else r.NO_LEADER
        out.append(
            {
                "topic": topic_name,
                "partition": partition,
                "leader": leader,
                "previous_leader": old.leader if old is not None else r.NO_LEADER,
                "preferred_leader": preferred,
                "leader_epoch": state.leader_epoch if state is not None else -1,
                "preferred": leader == preferred and leader >= 0,
            }
        )
    return {"partitions": out}


def print_election(console: Console, data: dict[str, Any]) -> None:
    table = Table("Topic", "Partition", "Leader", "Previous", "Preferred", "LeaderEpoch", "Status")
    for p in data["partitions"]:
        ok = p["preferred"]
        table.add_row(
            p["topic"],
            str(p["partition"]),
            "none" if p["leader"] < 0 else str(p["leader"]),
            "none" if p["previous_leader"] < 0 else str(p["previous_leader"]),
            str(p["preferred_leader"]),
            str(p["leader_epoch"]),
            Text("preferred" if ok else "not preferred", style="green" if ok else "yellow"),
        )
    console.print(table)
