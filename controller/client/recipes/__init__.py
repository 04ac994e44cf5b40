"""Coordination recipes for the trio client, in kazoo's and Curator's znode layouts so that
mixed fleets interoperate. See docs/recipes.md.

Every recipe that holds something (a lock, a lease, a leadership, a taken item, a membership)
exposes it as an `Ownership`: HELD / SUSPENDED / LOST / RELEASED, a `guard()` cancel scope and
a fencing token (the node's czxid).
"""

from controller.client.recipes._common import (
    LockLostError,
    LockTimeout,
    Wakeup,
    multi_error,
    raise_for_multi,
)
from controller.client.recipes.barrier import Barrier
from controller.client.recipes.config import ConfigWatch
from controller.client.recipes.counter import Counter
from controller.client.recipes.double_barrier import DoubleBarrier
from controller.client.recipes.election import LeaderElection, LeadershipLost
from controller.client.recipes.group import GroupMembership
from controller.client.recipes.latch import LeaderLatch
from controller.client.recipes.lock import Lock
from controller.client.recipes.locking_queue import LockedItem, LockingQueue
from controller.client.recipes.ownership import Ownership, OwnershipState
from controller.client.recipes.protected import protected_create
from controller.client.recipes.queue import Queue
from controller.client.recipes.rwlock import ReadLock, ReadWriteLock, WriteLock
from controller.client.recipes.semaphore import Semaphore
from controller.client.recipes.tree_cache import NodeData, TreeCache, TreeEvent, TreeEventType

__all__ = [
    "Barrier",
    "ConfigWatch",
    "Counter",
    "DoubleBarrier",
    "GroupMembership",
    "LeaderElection",
    "LeaderLatch",
    "LeadershipLost",
    "Lock",
    "LockLostError",
    "LockTimeout",
    "LockedItem",
    "LockingQueue",
    "NodeData",
    "Ownership",
    "OwnershipState",
    "Queue",
    "ReadLock",
    "ReadWriteLock",
    "Semaphore",
    "TreeCache",
    "TreeEvent",
    "TreeEventType",
    "Wakeup",
    "WriteLock",
    "multi_error",
    "protected_create",
    "raise_for_multi",
]
