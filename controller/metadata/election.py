"""Per-partition leader and ISR rules of the active controller (pure).

The rules follow Kafka's `PartitionChangeBuilder` (KRaft, `metadata/.../controller/`) for the
election order and KIP-841 for controlled shutdown, with the "last ISR member stays" rule of
both the ZooKeeper-era controller and KRaft (see KIP-966). They act on one partition at a
time and know nothing of the tree; `controller.metadata.decisions` turns their answers into
tree operations.

A replica is *active* when its broker is registered (live) and not in controlled shutdown
(KIP-841's `isActive()`); only active replicas join the ISR or become leaders, except that a
shutting-down leader is kept when no other in-sync replica could take over (availability over
a prompt shutdown: the broker keeps its leaderships until someone can take them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from controller.metadata.image import MetadataImage
from controller.metadata.records import NO_LEADER, PartitionState

UNCLEAN_LEADER_ELECTION_ENABLE = "unclean.leader.election.enable"

# Preferred-election outcomes per partition: the error names of Kafka's ElectLeaders response.
ELECTION_NONE = "NONE"
ELECTION_NOT_NEEDED = "ELECTION_NOT_NEEDED"
PREFERRED_LEADER_NOT_AVAILABLE = "PREFERRED_LEADER_NOT_AVAILABLE"
UNKNOWN_TOPIC_OR_PARTITION = "UNKNOWN_TOPIC_OR_PARTITION"

_MAX_STEPS = 4  # `decide_partition` reaches its fixed point in at most 3 steps (see there)


@attrs.frozen
class Liveness:
    """Broker status as the election rules see it: `live` = ids registered under
    `/brokers/ids`; `shutting` = live brokers whose controlled-shutdown request carries their
    current broker epoch (a request from an earlier incarnation is ignored, KIP-380)."""

    live: frozenset[int]
    shutting: frozenset[int]

    def is_active(self, broker: int) -> bool:
        """Live and not shutting down: may join the ISR and lead (KIP-841 `isActive`)."""
        return broker in self.live and broker not in self.shutting


def liveness(image: MetadataImage) -> Liveness:
    """The `Liveness` of an image's brokers."""
    shutting = frozenset(
        broker
        for broker, epoch in image.shutdown_requests.items()
        if broker in image.brokers and image.brokers[broker].epoch == epoch
    )
    return Liveness(frozenset(image.brokers), shutting)


def unclean_enabled(config: Mapping[str, str]) -> bool:
    """Whether a topic's config enables unclean leader election (Kafka's boolean parsing:
    trimmed, case-insensitive; default false)."""
    return config.get(UNCLEAN_LEADER_ELECTION_ENABLE, "false").strip().lower() == "true"


def new_partition_state(
    replicas: Sequence[int], status: Liveness, controller_epoch: int
) -> PartitionState:
    """The first state of a new partition (`ReplicationControlManager.createTopic`): ISR = the
    active replicas in assignment order, leader = the first of them, leader epoch 0. With no
    active replica: leader -1 and ISR = all replicas (the partition holds no data yet, so any
    replica may lead when it comes back)."""
    ordered = list(dict.fromkeys(replicas))
    isr = [b for b in ordered if status.is_active(b)]
    if not isr:
        return PartitionState(NO_LEADER, 0, ordered, controller_epoch)
    return PartitionState(isr[0], 0, isr, controller_epoch)


@attrs.frozen
class PartitionDecision:
    """A changed partition state and why (`reasons`: short phrases for the log line)."""

    state: PartitionState
    reasons: tuple[str, ...]
    unclean: bool = False


def _step(
    leader: int,
    isr: tuple[int, ...],
    replicas: Sequence[int],
    status: Liveness,
    unclean_allowed: bool,
) -> tuple[int, tuple[int, ...], bool]:
    """One application of the rules: shrink the ISR, elect, let replicas rejoin."""
    kept = [b for b in isr if status.is_active(b)]
    if not kept and isr:
        # The ISR never becomes empty. An offline partition keeps its ISR as it is (those are
        # the replicas that may lead when they return); otherwise the last member stays: the
        # leader if it was in the ISR, else the first of the old ISR.
        kept = list(isr) if leader == NO_LEADER else [leader if leader in isr else isr[0]]
    unclean = False
    if leader in kept and status.is_active(leader):
        new_leader = leader
    else:
        new_leader = next((b for b in replicas if b in kept and status.is_active(b)), NO_LEADER)
    if new_leader == NO_LEADER and leader in kept and leader in status.live:
        # Only a shutting-down leader remains in sync: keep it rather than go offline. Active
        # replicas rejoin through it below, and the next step hands leadership to them.
        new_leader = leader
    if new_leader == NO_LEADER and unclean_allowed:
        unclean_leader = next((b for b in replicas if status.is_active(b)), NO_LEADER)
        if unclean_leader != NO_LEADER:
            new_leader, kept, unclean = unclean_leader, [unclean_leader], True
    if new_leader != NO_LEADER:
        # Demo brokers hold no data to catch up: with a live leader, every active replica is
        # in sync. Without one, a returning non-ISR replica must not take the partition.
        kept += [b for b in replicas if b not in kept and status.is_active(b)]
    return new_leader, tuple(kept), unclean


def decide_partition(
    state: PartitionState,
    replicas: Sequence[int],
    status: Liveness,
    unclean_allowed: bool,
    controller_epoch: int,
) -> PartitionDecision | None:
    """The partition's next state, or None when it needs no change (`PartitionChangeBuilder`
    ONLINE/UNCLEAN order): keep the current leader if active and in the (shrunk) ISR; else the
    first active ISR member in assignment order; else keep a live shutting-down ISR leader; else,
    with unclean election enabled, the first active replica with ISR = [it]; else -1.

    Steps repeat to a fixed point (at most 3: a kept shutting-down leader lets active replicas
    rejoin, and the next step moves leadership to them), so applying the answer and deciding
    again returns None. `leader_epoch` grows by one when the leader changes (to or from -1
    included); an ISR-only change keeps it (KAFKA-15021). `controller_epoch` is set on every
    write."""
    replicas = tuple(dict.fromkeys(replicas))
    leader, isr, unclean = state.leader, tuple(state.isr), False
    for _ in range(_MAX_STEPS):
        next_leader, next_isr, next_unclean = _step(leader, isr, replicas, status, unclean_allowed)
        if (next_leader, next_isr) == (leader, isr):
            break
        leader, isr, unclean = next_leader, next_isr, unclean or next_unclean
    else:
        raise AssertionError(f"partition rules did not converge from {state}")
    if (leader, isr) == (state.leader, tuple(state.isr)):
        return None
    epoch = state.leader_epoch + (1 if leader != state.leader else 0)
    new = PartitionState(leader, epoch, list(isr), controller_epoch)
    assert new.isr or not state.isr, "the ISR never becomes empty"
    assert new.leader == NO_LEADER or new.leader in new.isr
    return PartitionDecision(new, _reasons(state, new, status, unclean), unclean)


def preferred_decision(
    state: PartitionState, replicas: Sequence[int], status: Liveness, controller_epoch: int
) -> tuple[str, PartitionState | None]:
    """PREFERRED election of one partition (`PartitionChangeBuilder` PREFERRED): `replicas[0]`
    becomes leader if it is active and in the ISR. Returns (Kafka error name, new state or
    None): NONE, ELECTION_NOT_NEEDED (it already leads), PREFERRED_LEADER_NOT_AVAILABLE."""
    if not replicas:
        return PREFERRED_LEADER_NOT_AVAILABLE, None
    preferred = replicas[0]
    if state.leader == preferred:
        return ELECTION_NOT_NEEDED, None
    if preferred not in state.isr or not status.is_active(preferred):
        return PREFERRED_LEADER_NOT_AVAILABLE, None
    new = PartitionState(preferred, state.leader_epoch + 1, list(state.isr), controller_epoch)
    return ELECTION_NONE, new


def _reasons(
    old: PartitionState, new: PartitionState, status: Liveness, unclean: bool
) -> tuple[str, ...]:
    reasons: list[str] = []
    departed = [b for b in dict.fromkeys([old.leader, *old.isr]) if b != NO_LEADER]
    for broker in departed:
        if broker in new.isr and (broker != old.leader or broker == new.leader):
            continue
        if broker not in status.live:
            reasons.append(f"broker {broker} died")
        elif broker in status.shutting:
            reasons.append(f"broker {broker} is shutting down")
    if unclean:
        reasons.append("unclean election, possibly losing data")
    elif old.leader == NO_LEADER and new.leader != NO_LEADER:
        reasons.append(f"broker {new.leader} is back")
    joined = [b for b in new.isr if b not in old.isr and not (unclean and b == new.leader)]
    if joined:
        reasons.append(f"{_brokers(joined)} rejoined the ISR")
    if new.leader == NO_LEADER and old.leader != NO_LEADER:
        reasons.append("no live in-sync replica: offline")
    return tuple(reasons)


def _brokers(ids: Sequence[int]) -> str:
    return ("broker " if len(ids) == 1 else "brokers ") + ", ".join(map(str, ids))


def describe_change(
    topic: str, partition: int, old: PartitionState, new: PartitionState, reasons: Sequence[str]
) -> str:
    """One log line, e.g. `orders-3: leader 2 -> 3, leader epoch 5, isr [3, 1] (broker 2
    died)`."""
    why = f" ({'; '.join(reasons)})" if reasons else ""
    if old.leader != new.leader:
        return (
            f"{topic}-{partition}: leader {old.leader} -> {new.leader}, "
            f"leader epoch {new.leader_epoch}, isr {list(new.isr)}{why}"
        )
    return (
        f"{topic}-{partition}: isr {list(old.isr)} -> {list(new.isr)}, "
        f"leader {new.leader}, leader epoch {new.leader_epoch}{why}"
    )
