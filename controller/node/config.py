"""Controller configuration: a TOML file and/or command-line flags.

Example file::

    node_id = 1
    cluster_id = "kraft-local"
    voters = ["1@127.0.0.1:2281", "2@127.0.0.1:2282", "3@127.0.0.1:2283"]
    observers = []
    client_host = "127.0.0.1"
    client_port = 2181
    data_dir = "./kraft-data/node-1"
    election_timeout_ms = 300
    heartbeat_interval_ms = 100
    fsync = "always"          # or "never" (tests and benchmarks only)
    snapshot_interval_entries = 100000
    admin_port = 8080         # HTTP: console, /metrics, /commands (-1 = off)
    extended_types_enabled = false   # ZooKeeper's extendedTypesEnabled (TTL nodes)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs

from controller import limits
from controller.raft.types import NodeId

DEFAULT_ADMIN_PORT = 8080
"""ZooKeeper's admin.serverPort default, for `kraft controller run` and config files."""


class ConfigError(ValueError):
    """A configuration value is missing or malformed (message says which and why)."""


@attrs.frozen
class Address:
    """A host and TCP port."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        host, sep, port = text.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"bad address {text!r}: expected host:port")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_member(text: str) -> tuple[NodeId, Address]:
    """`id@host:port` as in KRaft's controller.quorum.voters."""
    ident, sep, addr = text.strip().partition("@")
    if not sep or not ident.isdigit() or int(ident) <= 0:
        raise ConfigError(f"bad voter {text!r}: expected id@host:port with id > 0")
    return int(ident), Address.parse(addr)


def parse_bootstrap(text: str) -> list[Address]:
    """A ZooKeeper-style connect string `host:port,host:port`."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError("empty --bootstrap-server")
    return [Address.parse(p) for p in parts]


@attrs.frozen
class NodeConfig:
    """Everything one controller process needs to run."""

    node_id: NodeId
    voters: dict[NodeId, Address]
    data_dir: Path
    client_port: int
    client_host: str = "127.0.0.1"
    observers: dict[NodeId, Address] = attrs.field(factory=dict)
    cluster_id: str = "kraft-local"
    election_timeout_ms: int = limits.ELECTION_TICKS * limits.TICK_MS
    heartbeat_interval_ms: int = limits.HEARTBEAT_TICKS * limits.TICK_MS
    fsync: bool = True
    snapshot_interval_entries: int = limits.SNAPSHOT_INTERVAL_ENTRIES
    # ZooKeeper service settings (names follow zoo.cfg where one exists).
    tick_time_ms: int = 2000
    max_client_cnxns: int = 0
    max_outstanding_requests: int = 1000
    global_outstanding_limit: int = limits.GLOBAL_OUTSTANDING_LIMIT
    max_watches_per_session: int = 0
    jute_max_buffer: int = limits.JUTE_MAX_BUFFER
    four_letter_word_whitelist: tuple[str, ...] = ("*",)
    super_digest: str = ""
    extended_types_enabled: bool = False  # zoo.cfg extendedTypesEnabled: TTL nodes
    # Broker controller settings (Kafka's names, dots as underscores).
    leader_imbalance_check_interval_seconds: float = 300.0
    leader_imbalance_per_broker_percentage: int = 10
    auto_leader_rebalance_enable: bool = True
    # HTTP admin server (ZooKeeper's admin.serverPort): -1 = disabled, 0 = any free port.
    admin_port: int = -1

    def __attrs_post_init__(self) -> None:
        members = {**self.voters, **self.observers}
        if self.node_id not in members:
            raise ConfigError(f"node id {self.node_id} is neither a voter nor an observer")
        if set(self.voters) & set(self.observers):
            raise ConfigError("a node cannot be both voter and observer")
        if not self.voters:
            raise ConfigError("at least one voter is required")
        if self.heartbeat_interval_ms < limits.TICK_MS:
            raise ConfigError(f"heartbeat interval must be >= {limits.TICK_MS} ms")
        if self.election_timeout_ms <= 2 * self.heartbeat_interval_ms:
            raise ConfigError("election timeout must exceed twice the heartbeat interval")
        if not 0 <= self.client_port < 65536:
            raise ConfigError(f"bad client port {self.client_port}")
        if not -1 <= self.admin_port < 65536:
            raise ConfigError(f"bad admin port {self.admin_port} (-1 disables it)")
        if self.snapshot_interval_entries < 1:
            raise ConfigError("snapshot_interval_entries must be positive")
        if self.tick_time_ms < 10:
            raise ConfigError("tick_time_ms must be at least 10")
        if self.max_client_cnxns < 0 or self.max_watches_per_session < 0:
            raise ConfigError("connection and watch limits must be >= 0 (0 = unlimited)")
        if not 1 <= self.max_outstanding_requests <= 100_000:
            raise ConfigError(
                "max_outstanding_requests (--max-outstanding-requests) must be between 1 and 100000"
            )
        if not 1 <= self.global_outstanding_limit <= 100_000:
            raise ConfigError(
                "global_outstanding_limit (--global-outstanding-limit) must be between 1 and 100000"
            )
        if not 1024 <= self.jute_max_buffer <= limits.MAX_ENTRY_BYTES:
            raise ConfigError(f"jute_max_buffer must be in [1024, {limits.MAX_ENTRY_BYTES}]")
        if self.leader_imbalance_check_interval_seconds <= 0:
            raise ConfigError("leader_imbalance_check_interval_seconds must be positive")
        if not 0 <= self.leader_imbalance_per_broker_percentage <= 100:
            raise ConfigError("leader_imbalance_per_broker_percentage must be in [0, 100]")
        if self.super_digest and self.super_digest.count(":") != 1:
            raise ConfigError("super_digest must look like super:<base64 sha1>")

    @property
    def raft_address(self) -> Address:
        return {**self.voters, **self.observers}[self.node_id]

    @property
    def election_ticks(self) -> int:
        return max(2, self.election_timeout_ms // limits.TICK_MS)

    @property
    def heartbeat_ticks(self) -> int:
        return max(1, self.heartbeat_interval_ms // limits.TICK_MS)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> NodeConfig:
        known = {
            "node_id",
            "voters",
            "observers",
            "data_dir",
            "client_port",
            "client_host",
            "cluster_id",
            "election_timeout_ms",
            "heartbeat_interval_ms",
            "fsync",
            "snapshot_interval_entries",
            "tick_time_ms",
            "max_client_cnxns",
            "max_outstanding_requests",
            "global_outstanding_limit",
            "max_watches_per_session",
            "jute_max_buffer",
            "four_letter_word_whitelist",
            "super_digest",
            "extended_types_enabled",
            "leader_imbalance_check_interval_seconds",
            "leader_imbalance_per_broker_percentage",
            "auto_leader_rebalance_enable",
            "admin_port",
        }
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        for key in ("node_id", "voters", "data_dir", "client_port"):
            if raw.get(key) in (None, "", []):
                raise ConfigError(f"missing setting {key!r}")
        fsync = raw.get("fsync", "always")
        if fsync not in ("always", "never", True, False):
            raise ConfigError(f"fsync must be 'always' or 'never', not {fsync!r}")
        try:
            return cls(
                node_id=int(raw["node_id"]),
                voters=dict(parse_member(v) for v in _as_list(raw["voters"])),
                observers=dict(parse_member(v) for v in _as_list(raw.get("observers", []))),
                data_dir=Path(raw["data_dir"]),
                client_port=int(raw["client_port"]),
                client_host=str(raw.get("client_host", "127.0.0.1")),
                cluster_id=str(raw.get("cluster_id", "kraft-local")),
                election_timeout_ms=int(
                    raw.get("election_timeout_ms", limits.ELECTION_TICKS * limits.TICK_MS)
                ),
                heartbeat_interval_ms=int(
                    raw.get("heartbeat_interval_ms", limits.HEARTBEAT_TICKS * limits.TICK_MS)
                ),
                fsync=fsync in ("always", True),
                snapshot_interval_entries=int(
                    raw.get("snapshot_interval_entries", limits.SNAPSHOT_INTERVAL_ENTRIES)
                ),
                tick_time_ms=int(raw.get("tick_time_ms", 2000)),
                max_client_cnxns=int(raw.get("max_client_cnxns", 0)),
                max_outstanding_requests=int(raw.get("max_outstanding_requests", 1000)),
                global_outstanding_limit=int(
                    raw.get("global_outstanding_limit", limits.GLOBAL_OUTSTANDING_LIMIT)
                ),
                max_watches_per_session=int(raw.get("max_watches_per_session", 0)),
                jute_max_buffer=int(raw.get("jute_max_buffer", limits.JUTE_MAX_BUFFER)),
                four_letter_word_whitelist=tuple(
                    w.strip() for w in _as_list(raw.get("four_letter_word_whitelist", "*"))
                ),
                super_digest=str(raw.get("super_digest", "")),
                extended_types_enabled=raw.get("extended_types_enabled", False)
                in (True, "true", "1", 1),
                leader_imbalance_check_interval_seconds=float(
                    raw.get("leader_imbalance_check_interval_seconds", 300.0)
                ),
                leader_imbalance_per_broker_percentage=int(
                    raw.get("leader_imbalance_per_broker_percentage", 10)
                ),
                auto_leader_rebalance_enable=raw.get("auto_leader_rebalance_enable", True)
                in (True, "true", "1", 1),
                admin_port=int(raw.get("admin_port", DEFAULT_ADMIN_PORT)),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(str(exc)) from exc

    @classmethod
    def load(cls, path: Path, overrides: dict[str, Any] | None = None) -> NodeConfig:
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_mapping(raw)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise ConfigError(f"expected a list or comma-separated string, got {value!r}")
