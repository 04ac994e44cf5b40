"""`Timeline`: a bounded, live list of cluster events for the console and `/metrics`.

A `RaftListener` registered after the broker controller: for each applied batch it looks only
at the metadata znodes the batch touched (the `Applied.events` of its entries) and compares
the broker controller's image before and after for exactly those paths, so its cost is
proportional to the batch, never to the number of partitions. Leader changes come from
`handle_leader_change`. Every controller (leader, follower, observer) keeps one.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from controller.coord.commands import Applied
from controller.metadata.image import MetadataImage, PartitionImage, is_metadata_path
from controller.metadata.records import NO_LEADER
from controller.node.listeners import CommittedBatch, LeaderChange
from controller.raft.types import LogIndex

if TYPE_CHECKING:
    from controller.service.broker_controller import BrokerController

MAX_EVENTS = 2000

ELECTION_CAUSES = (
    "initial",
    "broker_failure",
    "controlled_shutdown",
    "preferred",
    "offline",
    "other",
)
"""Why a partition's leader changed, as counted in `kraft_partition_leader_elections_total`."""


class Timeline:
    """Recent events (newest last) with sequence numbers, and counters derived from them."""

    def __init__(self, brokers: BrokerController, max_events: int = MAX_EVENTS) -> None:
        self._brokers = brokers
        self._image: MetadataImage = brokers.image
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self.seq = 0
        self.changed = trio.Event()  # set (and replaced) whenever events are appended
        self._leader: tuple[int | None, int] | None = None
        self.elections = 0  # quorum leader changes seen (a new term or leader)
        self.leader_elections: dict[str, int] = dict.fromkeys(ELECTION_CAUSES, 0)
        self.broker_joins = 0
        self.broker_deaths = 0
        self.controller_changes = 0

    # ------------------------------------------------------------------ events

    def add(self, kind: str, text: str, **fields: Any) -> None:
        self.seq += 1
        self.events.append(
            {"seq": self.seq, "time_ms": int(time.time() * 1000), "kind": kind, "text": text}
            | fields
        )
        self.changed.set()
        self.changed = trio.Event()

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Events with a sequence number above `seq`, oldest first."""
        if not self.events or self.events[-1]["seq"] <= seq:
            return []
        return [e for e in self.events if e["seq"] > seq]

    # ------------------------------------------------------------------ RaftListener

    def handle_commit(self, batch: CommittedBatch) -> None:
        touched: dict[str, None] = {}
        for _entry, result in batch:
            if type(result) is not Applied or not result.events:
                continue
            for _event, path in result.events:
                if is_metadata_path(path):
                    touched[path] = None
        if not touched:
            return
        before, after = self._image, self._brokers.image
        self._image = after
        if before is after:
            return
        for path in touched:
            self._diff(path, before, after)

    def handle_snapshot(self, index: LogIndex, zxid: int) -> None:
        self._image = self._brokers.image
        self.add("snapshot", f"state loaded from a snapshot at index {index}", index=index)

    def handle_leader_change(self, change: LeaderChange) -> None:
        key = (change.leader_id, change.term)
        if change.leader_id is None or key == self._leader:
            return
        self._leader = key
        self.elections += 1
        self.add(
            "election",
            f"controller {change.leader_id} leads the quorum in term {change.term}",
            leader=change.leader_id,
            term=change.term,
        )

    # ------------------------------------------------------------------ diffs

    def _diff(self, path: str, before: MetadataImage, after: MetadataImage) -> None:
        parts = path.split("/")[1:]
        if len(parts) == 3 and parts[:2] == ["brokers", "ids"] and parts[2].isdigit():
            self._broker(int(parts[2]), before, after)
        elif len(parts) == 3 and parts[:2] == ["brokers", "topics"]:
            self._topic(parts[2], before, after)
        elif (
            len(parts) == 6
            and parts[:2] == ["brokers", "topics"]
            and parts[3] == "partitions"
            and parts[4].isdigit()
            and parts[5] == "state"
        ):
            self._partition(parts[2], int(parts[4]), before, after)
        elif parts == ["controller"]:
            old, new = before.controller, after.controller
            if new is not None and (old is None or old.brokerid != new.brokerid):
                self.controller_changes += 1
                self.add(
                    "controller",
                    f"controller {new.brokerid} is the active controller "
                    f"(controller epoch {after.controller_epoch})",
                    controller=new.brokerid,
                    controller_epoch=after.controller_epoch,
                )

    def _broker(self, broker_id: int, before: MetadataImage, after: MetadataImage) -> None:
        old, new = before.brokers.get(broker_id), after.brokers.get(broker_id)
        if new is not None and (old is None or old.epoch != new.epoch):
            self.broker_joins += 1
            self.add(
                "broker_join",
                f"broker {broker_id} registered (rack {new.rack or '-'}, epoch {new.epoch})",
                broker=broker_id,
                rack=new.rack,
                epoch=new.epoch,
            )
        elif new is None and old is not None:
            self.broker_deaths += 1
            self.add("broker_death", f"broker {broker_id} is gone", broker=broker_id)

    def _topic(self, name: str, before: MetadataImage, after: MetadataImage) -> None:
        old, new = before.topics.get(name), after.topics.get(name)
        if new is not None and old is None:
            self.add(
                "topic_created",
                f"topic {name} created with {len(new.assignment)} partitions",
                topic=name,
            )
        elif new is None and old is not None:
            self.add("topic_deleted", f"topic {name} deleted", topic=name)

    def _partition(
        self, topic: str, partition: int, before: MetadataImage, after: MetadataImage
    ) -> None:
        old_topic, new_topic = before.topics.get(topic), after.topics.get(topic)
        old = old_topic.partitions.get(partition) if old_topic is not None else None
        new = new_topic.partitions.get(partition) if new_topic is not None else None
        if new is None or (old is not None and old.leader == new.leader):
            return
        assert new_topic is not None
        cause = _cause(old, new, new_topic.replicas(partition), before, after)
        self.leader_elections[cause] += 1
        previous = old.leader if old is not None else None
        self.add(
            "leader_change",
            f"{topic}-{partition}: leader {_broker_name(previous)} -> {_broker_name(new.leader)} "
            f"(leader epoch {new.leader_epoch}, {cause.replace('_', ' ')})",
            topic=topic,
            partition=partition,
            old_leader=previous,
            leader=new.leader,
            leader_epoch=new.leader_epoch,
            isr=list(new.isr),
            cause=cause,
        )


def _broker_name(broker: int | None) -> str:
    return "none" if broker is None or broker == NO_LEADER else str(broker)


def _cause(
    old: PartitionImage | None,
    new: PartitionImage,
    replicas: tuple[int, ...],
    before: MetadataImage,
    after: MetadataImage,
) -> str:
    if old is None:
        return "initial"
    if new.leader == NO_LEADER:
        return "offline"
    if old.leader != NO_LEADER and not after.is_live(old.leader):
        return "broker_failure"
    if old.leader in before.shutdown_requests or old.leader in after.shutdown_requests:
        return "controlled_shutdown"
    if replicas and new.leader == replicas[0]:
        return "preferred"
    return "other"
