"""Async trio client for the ZooKeeper protocol (used by the CLI, demo brokers, tests)."""

from controller.client.client import OPEN_ACL_UNSAFE, State, WatchedEvent, ZkClient, open_client
from controller.client.errors import *  # noqa: F403

__all__ = ["OPEN_ACL_UNSAFE", "State", "WatchedEvent", "ZkClient", "open_client"]
