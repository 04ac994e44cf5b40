"""The demo broker's metadata cache: pure (no I/O, no clock).

The broker feeds it what it reads from the coordination tree: partition states
(`update_partition`), topic assignments (`update_assignment`) and broker registrations
(`update_broker`), each with the zxid it reflects (the znode's mzxid; for a node found
missing, the zxid at which it was found missing). Each call returns the changes it caused:
`RoleChange` when this broker becomes leader or follower of a partition (or stops being a
replica), `MembershipChange` when another broker joins or leaves. `resync` takes a full
read of the tree (after a reconnect, when watch notifications may have been missed) and
returns only the real differences.

Reads of one path must be fed in the order they were answered; an update older (by mzxid)
than the entry the cache holds is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from controller.metadata import records as r
from controller.metadata.image import ZnodeView
from controller.metadata.records import BrokerRegistration, PartitionState, TopicAssignment

Role = Literal["leader", "follower", "none"]


def hex_zxid(zxid: int) -> str:
    return f"0x{zxid:x}"


def partition_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


@attrs.frozen
class RoleChange:
    """This broker's role for one partition changed (Kafka: a LeaderAndIsr that makes it
    leader or follower, or a StopReplica). `leader`/`leader_epoch` are -1 for "none"."""

    topic: str
    partition: int
    role: Role
    leader: int
    leader_epoch: int
    zxid: int

    @property
    def name(self) -> str:
        return partition_name(self.topic, self.partition)

    def describe(self, broker_id: int) -> str:
        at = f"(zxid {hex_zxid(self.zxid)})"
        if self.role == "leader":
            return f"broker {broker_id}: leader of {self.name} at epoch {self.leader_epoch} {at}"
        if self.role == "follower":
            leader = f"leader {self.leader}" if self.leader >= 0 else "no leader"
            return (
                f"broker {broker_id}: follower of {self.name} "
                f"({leader}, epoch {self.leader_epoch}) {at}"
            )
        return f"broker {broker_id}: no longer a replica of {self.name} {at}"


@attrs.frozen
class MembershipChange:
    """Another broker registered (`joined`) or its registration went away."""

    broker_id: int
    joined: bool
    epoch: int
    zxid: int

    def describe(self, broker_id: int) -> str:
        verb = "joined" if self.joined else "left"
        return f"broker {broker_id}: broker {self.broker_id} {verb} (zxid {hex_zxid(self.zxid)})"


Change = RoleChange | MembershipChange


@attrs.frozen
class _State:
    state: PartitionState
    zxid: int


@attrs.frozen
class _Assignment:
    replicas: Mapping[int, tuple[int, ...]]
    zxid: int


@attrs.frozen
class _Broker:
    epoch: int
    registration: BrokerRegistration | None
    zxid: int


@attrs.frozen
class _Role:
    role: Role
    leader: int
    leader_epoch: int


_NONE = _Role("none", -1, -1)


class MetadataCache:
    """What one broker knows of partitions and brokers, and its own roles (see module)."""

    def __init__(self, broker_id: int) -> None:
        self.broker_id = broker_id
        self.zxid = 0  # the highest zxid the cache reflects
        self._states: dict[tuple[str, int], _State] = {}
        self._assignments: dict[str, _Assignment] = {}
        self._brokers: dict[int, _Broker] = {}
        self._roles: dict[tuple[str, int], _Role] = {}

    # ------------------------------------------------------------------ queries

    def role(self, topic: str, partition: int) -> Role:
        return self._roles.get((topic, partition), _NONE).role

    def _with_role(self, role: Role) -> list[str]:
        return [
            partition_name(*key) for key in sorted(self._roles) if self._roles[key].role == role
        ]

    def leader_of(self) -> list[str]:
        """Partitions this broker leads, as `topic-partition`, sorted."""
        return self._with_role("leader")

    def follower_of(self) -> list[str]:
        """Partitions this broker follows, as `topic-partition`, sorted."""
        return self._with_role("follower")

    def live_brokers(self) -> dict[int, int]:
        """Registered broker ids (this one included) -> broker epoch."""
        return {b: entry.epoch for b, entry in sorted(self._brokers.items())}

    def partitions(self) -> dict[tuple[str, int], tuple[PartitionState, int]]:
        """Every known partition state and the zxid it reflects."""
        return {key: (s.state, s.zxid) for key, s in sorted(self._states.items())}

    def status(self) -> dict[str, Any]:
        """The JSON-ready metadata view the status request returns."""
        return {
            "metadata_zxid": hex_zxid(self.zxid),
            "leader_of": self.leader_of(),
            "follower_of": self.follower_of(),
            "live_brokers": sorted(self._brokers),
            "partitions": {
                partition_name(*key): {
                    "leader": s.state.leader,
                    "leader_epoch": s.state.leader_epoch,
                    "isr": list(s.state.isr),
                    "replicas": list(self._replicas(*key)),
                    "zxid": hex_zxid(s.zxid),
                }
                for key, s in sorted(self._states.items())
            },
        }

    # ------------------------------------------------------------------ updates

    def update_partition(
        self, topic: str, partition: int, state: PartitionState | None, zxid: int
    ) -> list[Change]:
        key = (topic, partition)
        current = self._states.get(key)
        if state is not None and current is not None and zxid < current.zxid:
            return []  # an older read than what we hold
        self._seen(zxid)
        if state is None:
            self._states.pop(key, None)
        else:
            self._states[key] = _State(state, zxid)
        return self._recompute(key, zxid)

    def update_assignment(
        self, topic: str, replicas: Mapping[int, Sequence[int]] | None, zxid: int
    ) -> list[Change]:
        current = self._assignments.get(topic)
        if replicas is not None and current is not None and zxid < current.zxid:
            return []
        self._seen(zxid)
        if replicas is None:
            self._assignments.pop(topic, None)
        else:
            self._assignments[topic] = _Assignment(
                {p: tuple(rs) for p, rs in replicas.items()}, zxid
            )
        changes: list[Change] = []
        for key in sorted(k for k in set(self._states) | set(self._roles) if k[0] == topic):
            changes += self._recompute(key, zxid)
        return changes

    def update_broker(
        self,
        broker_id: int,
        epoch: int | None,
        zxid: int,
        registration: BrokerRegistration | None = None,
    ) -> list[Change]:
        """A registration (`epoch`: its czxid) or its absence (`epoch` None)."""
        current = self._brokers.get(broker_id)
        if epoch is not None and current is not None and zxid < current.zxid:
            return []
        self._seen(zxid)
        changes: list[Change] = []
        if current is not None and (epoch is None or epoch != current.epoch):
            del self._brokers[broker_id]
            if broker_id != self.broker_id:
                changes.append(MembershipChange(broker_id, False, current.epoch, zxid))
        joined = epoch is not None and broker_id not in self._brokers
        if joined and epoch is not None and broker_id != self.broker_id:
            changes.append(MembershipChange(broker_id, True, epoch, zxid))
        if epoch is not None:
            self._brokers[broker_id] = _Broker(epoch, registration, zxid)
        return changes

    def observe(self, path: str, node: ZnodeView | None, zxid: int | None = None) -> list[Change]:
        """Feed one znode as read (`None`: missing; `zxid` then says when it was found
        missing). Paths outside /brokers/ids/<id>, /brokers/topics/<t> and partition
        states are ignored; undecodable payloads count as missing."""
        at = node.mzxid if node is not None else (zxid or self.zxid)
        parts = path.split("/")[1:]
        if len(parts) == 3 and parts[:2] == ["brokers", "ids"] and parts[2].isdigit():
            registration = _decode(node, BrokerRegistration)
            epoch = node.czxid if node is not None and registration is not None else None
            return self.update_broker(int(parts[2]), epoch, at, registration)
        if len(parts) == 3 and parts[:2] == ["brokers", "topics"]:
            assignment = _decode(node, TopicAssignment)
            replicas = _replicas_of(assignment)
            return self.update_assignment(parts[2], replicas, at)
        if (
            len(parts) == 6
            and parts[:2] == ["brokers", "topics"]
            and parts[3] == "partitions"
            and parts[4].isdigit()
            and parts[5] == "state"
        ):
            state = _decode(node, PartitionState)
            return self.update_partition(parts[2], int(parts[4]), state, at)
        return []

    def resync(self, nodes: Iterable[tuple[str, ZnodeView]], zxid: int) -> list[Change]:
        """A full read of /brokers (parents before or after children, any order): applies
        every node and drops whatever the read no longer holds (found missing at `zxid`,
        the zxid the read started from)."""
        nodes = sorted(nodes, key=lambda item: (item[0].count("/"), item[0]))
        brokers: set[int] = set()
        topics: set[str] = set()
        states: set[tuple[str, int]] = set()
        changes: list[Change] = []
        for path, node in nodes:
            changes += self.observe(path, node)
            parts = path.split("/")[1:]
            if len(parts) == 3 and parts[1] == "ids" and parts[2].isdigit():
                brokers.add(int(parts[2]))
            elif len(parts) == 3 and parts[1] == "topics":
                topics.add(parts[2])
            elif len(parts) == 6 and parts[1] == "topics" and parts[4].isdigit():
                states.add((parts[2], int(parts[4])))
        for key in sorted(set(self._states) - states):
            changes += self.update_partition(*key, None, zxid)
        for topic in sorted(set(self._assignments) - topics):
            changes += self.update_assignment(topic, None, zxid)
        for broker_id in sorted(set(self._brokers) - brokers):
            changes += self.update_broker(broker_id, None, zxid)
        self._seen(zxid)
        return changes

    # ------------------------------------------------------------------ internals

    def _seen(self, zxid: int) -> None:
        self.zxid = max(self.zxid, zxid)

    def _replicas(self, topic: str, partition: int) -> tuple[int, ...]:
        assignment = self._assignments.get(topic)
        return () if assignment is None else assignment.replicas.get(partition, ())

    def _target(self, key: tuple[str, int]) -> _Role:
        entry = self._states.get(key)
        if entry is None:
            return _NONE  # no state (yet, or any more): no role
        state = entry.state
        me = self.broker_id
        if state.leader == me:
            return _Role("leader", me, state.leader_epoch)
        if me in self._replicas(*key) or me in state.isr:
            return _Role("follower", state.leader, state.leader_epoch)
        return _NONE

    def _recompute(self, key: tuple[str, int], zxid: int) -> list[Change]:
        old = self._roles.get(key, _NONE)
        new = self._target(key)
        if new == old:
            return []
        if new.role == "none":
            del self._roles[key]
        else:
            self._roles[key] = new
        return [RoleChange(key[0], key[1], new.role, new.leader, new.leader_epoch, zxid)]


def _decode(node: ZnodeView | None, cls: type[Any]) -> Any:
    if node is None:
        return None
    try:
        return r.decode(node.data, cls)
    except r.RecordError:
        return None


def _replicas_of(assignment: TopicAssignment | None) -> dict[int, tuple[int, ...]] | None:
    if assignment is None:
        return None
    try:
        return assignment.replicas()
    except ValueError:
        return None
