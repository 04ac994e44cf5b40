"""Durable storage for the Raft log, hard state and snapshots (blocking; run in a thread)."""

from controller.storage.file_storage import (
    ClusterIdMismatch,
    CorruptLogError,
    FileStorage,
    Recovered,
    StorageError,
)

__all__ = ["ClusterIdMismatch", "CorruptLogError", "FileStorage", "Recovered", "StorageError"]
