"""ZooKeeper quotas as the data tree keeps them (pure helpers).

A quota on `/q` is the node `/zookeeper/quota/q/zookeeper_limits` (its data: the limits, e.g.
`count=5,bytes=-1`); `/zookeeper/quota/q/zookeeper_stats` holds what the subtree uses. As in
ZooKeeper's DataTree, every create, delete and setData below a quota root updates that stats
node (its data only: version and mzxid stay), and creating the stats node recomputes it from
the subtree. Exceeding a quota is only logged by ZooKeeper 3.8 (`enforceQuota` is off by
default); here it is not enforced either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"

_PAIRS = re.compile("[,;]+")
_LONG = re.compile(r"[+-]?[0-9]+")


def java_trim(text: str) -> str:
    """String.trim(): strips every character <= U+0020 at both ends."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def java_split(text: str, pattern: str | re.Pattern[str]) -> list[str]:
    """String.split(regex): trailing empty strings are dropped ("" splits to [""])."""
    parts = re.split(pattern, text)
    if text == "":
        return [""]
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def quota_key(path: str) -> str | None:
    """The quota path PathTrie stores for `path` (blank components dropped), None if empty."""
    parts = [p for p in path.split("/") if java_trim(p)]
    return "/" + "/".join(parts) if parts else None


def limit_parent_key(parent: str) -> str | None:
    """The quota a `zookeeper_limits` child of `parent` declares (ZooKeeper's test is a plain
    string prefix on /zookeeper/quota), or None."""
    if not parent.startswith(QUOTA_ROOT):
        return None
    return quota_key(parent[len(QUOTA_ROOT) :])


def stat_path(key: str) -> str:
    return f"{QUOTA_ROOT}{key}/{STAT_NODE}"


def max_prefix(roots: Mapping[str, int], path: str) -> str | None:
    """The deepest quota root that contains `path` (PathTrie.findMaxPrefix), or None."""
    if not roots:
        return None
    parts = [p for p in path.split("/") if java_trim(p)]
    for depth in range(len(parts), 0, -1):
        key = "/" + "/".join(parts[:depth])
        if key in roots:
            return key
    return None


def parse_stats(data: bytes | None) -> dict[str, int] | None:
    """StatsTrack's parser; None where ZooKeeper's would throw."""
    if data is None:
        return None
    text = data.decode("utf-8", "replace")
    stats: dict[str, int] = {}
    if not text:
        return stats
    for pair in java_split(text, _PAIRS):
        kv = java_split(pair, "=")
        if len(kv) < 2:
            return None
        value = kv[1] or "-1"
        if not _LONG.fullmatch(value):
            return None
        stats[kv[0]] = int(value)
    return stats


def format_stats(stats: Mapping[str, int]) -> bytes:
    """StatsTrack.toString: count and bytes first, other keys sorted after an extra '='."""
    out = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    rest = sorted(k for k in stats if k not in ("count", "bytes"))
    if rest:
        out += "=" + "".join(f";{k}={stats[k]}" for k in rest)
    return out.encode()


def adjusted(data: bytes | None, bytes_diff: int, count_diff: int) -> bytes | None:
    """The stats node's new data after a change below its quota root (None: unparsable,
    leave it as it is)."""
    stats = parse_stats(data)
    if stats is None:
        return None
    stats["count"] = stats.get("count", -1) + count_diff
    stats["bytes"] = stats.get("bytes", -1) + bytes_diff
    return format_stats(stats)
