"""Topic-level configuration keys Kafka accepts (`LogConfig`, 3.x) and their value rules.

Pure validation for `kraft topics create --config k=v`: an unknown key or a malformed value is
refused, as Kafka refuses it (InvalidConfigurationException), instead of being stored silently.
Only `unclean.leader.election.enable` changes what the controller does; the rest are stored
for brokers, as Kafka stores them in `/config/topics/<t>`.
"""

from __future__ import annotations

from collections.abc import Callable

Check = Callable[[str], str | None]  # value -> error message, or None when valid


def _integer(low: int) -> Check:
    def check(value: str) -> str | None:
        try:
            number = int(value)
        except ValueError:
            return "not an integer"
        return f"must be at least {low}" if number < low else None

    return check


def _ratio(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return "not a number"
    return None if 0.0 <= number <= 1.0 else "must be between 0 and 1"


def _boolean(value: str) -> str | None:
    return None if value.strip().lower() in ("true", "false") else "must be true or false"


def _one_of(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return check


def _list_of(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        items = [item.strip() for item in value.split(",") if item.strip()]
        bad = [item for item in items if item not in allowed]
        if not items or bad:
            return f"must be a comma-separated list of {', '.join(allowed)}"
        return None

    return check


def _any(value: str) -> str | None:
    return None


TOPIC_CONFIGS: dict[str, Check] = {
    "cleanup.policy": _list_of("delete", "compact"),
    "compression.type": _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
    "delete.retention.ms": _integer(0),
    "file.delete.delay.ms": _integer(0),
    "flush.messages": _integer(1),
    "flush.ms": _integer(0),
    "follower.replication.throttled.replicas": _any,
    "index.interval.bytes": _integer(0),
    "leader.replication.throttled.replicas": _any,
    "local.retention.bytes": _integer(-2),
    "local.retention.ms": _integer(-2),
    "max.compaction.lag.ms": _integer(1),
    "max.message.bytes": _integer(0),
    "message.downconversion.enable": _boolean,
    "message.format.version": _any,
    "message.timestamp.after.max.ms": _integer(0),
    "message.timestamp.before.max.ms": _integer(0),
    "message.timestamp.difference.max.ms": _integer(0),
    "message.timestamp.type": _one_of("CreateTime", "LogAppendTime"),
    "min.cleanable.dirty.ratio": _ratio,
    "min.compaction.lag.ms": _integer(0),
    "min.insync.replicas": _integer(1),
    "preallocate": _boolean,
    "remote.storage.enable": _boolean,
    "retention.bytes": _integer(-1),
    "retention.ms": _integer(-1),
    "segment.bytes": _integer(14),
    "segment.index.bytes": _integer(4),
    "segment.jitter.ms": _integer(0),
    "segment.ms": _integer(1),
    "unclean.leader.election.enable": _boolean,
}


def config_problem(key: str, value: str) -> str | None:
    """Why `key=value` is not a valid topic config (one phrase naming it), or None."""
    check = TOPIC_CONFIGS.get(key)
    if check is None:
        return f"unknown topic config {key!r}"
    problem = check(value)
    return None if problem is None else f"config {key}={value!r}: {problem}"
