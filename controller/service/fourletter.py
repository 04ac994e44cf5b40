"""ZooKeeper's four-letter words (`ruok`, `srvr`, `stat`, `mntr`, ...) as plain-text replies."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import controller
from controller.service.watches import KINDS
from controller.storage.file_storage import LOG_DIR

if TYPE_CHECKING:
    from controller.service.zk_service import ZkService

VERSION = f"3.8.0-kraft-controller-{controller.__version__}"
KNOWN = ("ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "wchc", "wchp",
         "dump", "isro", "dirs", "crst", "srst")  # fmt: skip


def _mode(service: ZkService) -> str:
    role = service.node.core.role
    if role == "leader":
        return "leader"
    if role == "observer":
        return "observer"
    return "follower"


def _serving(service: ZkService) -> bool:
    return service.node.core.leader_id is not None


def four_letter_reply(service: ZkService, word: str) -> str:
    settings = service.settings
    allowed = "*" in settings.four_letter_whitelist or word in settings.four_letter_whitelist
    if word not in KNOWN:
        return f"{word} is not a supported command.\n"
    if not allowed:
        return f"{word} is not executed because it is not in the whitelist.\n"
    if word == "ruok":
        return "imok"
    if word == "isro":
        return "rw"
    if word == "envi":
        return _envi()
    if not _serving(service) and word not in ("conf", "dirs"):
        return "This ZooKeeper instance is not currently serving requests\n"
    return word_text(service, word)


def word_text(service: ZkService, word: str) -> str:
    """The reply to a known word other than ruok/isro, without the whitelist and serving
    checks (also used by the HTTP admin server's `/commands/<name>`)."""
    if word == "envi":
        return _envi()
    handler: Callable[[], str] = {
        "srvr": lambda: _srvr(service, with_clients=False),
        "stat": lambda: _srvr(service, with_clients=True),
        "mntr": lambda: _mntr(service),
        "conf": lambda: _conf(service),
        "cons": lambda: _cons(service),
        "wchs": lambda: _wchs(service),
        "wchc": lambda: _wchc(service),
        "wchp": lambda: _wchp(service),
        "dump": lambda: _dump(service),
        "dirs": lambda: _dirs(service),
        "crst": lambda: _crst(service),
        "srst": lambda: _srst(service),
    }[word]
    return handler()


def _envi() -> str:
    lines = [
        "Environment:",
        f"zookeeper.version={VERSION}",
        f"host.name={platform.node()}",
        f"python.version={sys.version.split()[0]}",
        f"os.name={platform.system()}",
        f"os.arch={platform.machine()}",
        f"os.version={platform.release()}",
        f"user.dir={os.getcwd()}",
    ]
    return "\n".join(lines) + "\n"


def _latency(service: ZkService) -> str:
    avg = service.latency_total / service.latency_count if service.latency_count else 0.0
    return f"{service.latency_min:.0f}/{avg:.4f}/{service.latency_max:.0f}"


def _srvr(service: ZkService, *, with_clients: bool) -> str:
    lines = [f"Zookeeper version: {VERSION}, built on {time.strftime('%m/%d/%Y')}"]
    if with_clients:
        lines.append("Clients:")
        for conn in service.connections.values():
            lines.append(f" /{conn.address}[1](queued={len(conn.queue)},recved={conn.received},"
                         f"sent={conn.sent})")  # fmt: skip
        lines.append("")
    lines += [
        f"Latency min/avg/max: {_latency(service)}",
        f"Received: {service.packets_received}",
        f"Sent: {service.packets_sent}",
        f"Connections: {len(service.connections)}",
        f"Outstanding: {sum(len(c.queue) for c in service.connections.values())}",
        f"Zxid: 0x{service.node.last_zxid:x}",
        f"Mode: {_mode(service)}",
        f"Node count: {service.machine.tree.node_count}",
    ]
    return "\n".join(lines) + "\n"


def _mntr(service: ZkService) -> str:
    return "".join(f"{k}\t{v}\n" for k, v in mntr_values(service))


def mntr_values(service: ZkService) -> list[tuple[str, object]]:
    """`mntr`'s keys and values, in order (also read by `/commands/mntr` and `/metrics`)."""
    tree = service.machine.tree
    avg = service.latency_total / service.latency_count if service.latency_count else 0.0
    values: list[tuple[str, object]] = [
        ("zk_version", VERSION),
        ("zk_server_state", _mode(service)),
        ("zk_avg_latency", f"{avg:.4f}"),
        ("zk_max_latency", f"{service.latency_max:.0f}"),
        ("zk_min_latency", f"{service.latency_min:.0f}"),
        ("zk_packets_received", service.packets_received),
        ("zk_packets_sent", service.packets_sent),
        ("zk_num_alive_connections", len(service.connections)),
        ("zk_outstanding_requests", sum(len(c.queue) for c in service.connections.values())),
        ("zk_znode_count", tree.node_count),
        ("zk_watch_count", service.watches.count()),
        ("zk_ephemerals_count", sum(len(p) for p in tree.ephemerals.values())),
        ("zk_approximate_data_size", tree.approximate_data_size()),
        ("zk_session_count", len(service.machine.sessions)),
        ("zk_last_zxid", f"0x{service.node.last_zxid:x}"),
    ]
    if _mode(service) == "leader":
        progress = service.node.core.progress()
        followers = [p for p in progress if p != service.node.node_id]
        synced = [p for p in followers if progress[p].match_index >= service.node.core.commit_index]
        values += [
            ("zk_followers", len(followers)),
            ("zk_synced_followers", len(synced)),
            ("zk_pending_syncs", 0),
        ]
    return values


def _conf(service: ZkService) -> str:
    cfg = service.node.config
    s = service.settings
    lines = [
        f"clientPort={service.node.client_address.rsplit(':', 1)[1]}",
        f"dataDir={cfg.data_dir}",
        f"tickTime={s.tick_time_ms}",
        f"maxClientCnxns={s.max_client_cnxns}",
        f"minSessionTimeout={s.min_timeout}",
        f"maxSessionTimeout={s.max_timeout}",
        f"serverId={cfg.node_id}",
        f"jute.maxbuffer={s.jute_max_buffer}",
    ]
    for nid, addr in sorted(cfg.voters.items()):
        lines.append(f"server.{nid}={addr}:participant")
    for nid, addr in sorted(cfg.observers.items()):
        lines.append(f"server.{nid}={addr}:observer")
    return "\n".join(lines) + "\n"


def _cons(service: ZkService) -> str:
    out = []
    for conn in service.connections.values():
        out.append(
            f" /{conn.address}[1](queued={len(conn.queue)},recved={conn.received},"
            f"sent={conn.sent},sid=0x{conn.session_id:x},to={conn.timeout_ms})"
        )
    return "\n".join(out) + "\n\n"


def _wchs(service: ZkService) -> str:
    w = service.watches
    tables = [getattr(w, kind) for kind in KINDS]
    paths = {p for table in tables for p in table}
    conns = len({k for table in tables for keys in table.values() for k in keys})
    return f"{conns} connections watching {len(paths)} paths\nTotal watches:{w.count()}\n"


def _wchc(service: ZkService) -> str:
    out = []
    for conn in service.connections.values():
        paths = sorted({p for _, p in service.watches.paths_for(conn.id)})
        if paths:
            out.append(f"0x{conn.session_id:x}")
            out += [f"\t{p}" for p in paths]
    return "\n".join(out) + "\n"


def _wchp(service: ZkService) -> str:
    by_path: dict[str, set[int]] = {}
    for conn in service.connections.values():
        for _, p in service.watches.paths_for(conn.id):
            by_path.setdefault(p, set()).add(conn.session_id)
    out = []
    for p in sorted(by_path):
        out.append(p)
        out += [f"\t0x{sid:x}" for sid in sorted(by_path[p])]
    return "\n".join(out) + "\n"


def _dump(service: ZkService) -> str:
    tree = service.machine.tree
    lines = ["SessionTracker dump:", f"Session Sets ({len(service.machine.sessions)}):"]
    lines += [f"0x{sid:x}" for sid in sorted(service.machine.sessions)]
    lines.append(f"ephemeral nodes dump:\nSessions with Ephemerals ({len(tree.ephemerals)}):")
    for sid, paths in sorted(tree.ephemerals.items()):
        lines.append(f"0x{sid:x}:")
        lines += [f"\t{p}" for p in sorted(paths)]
    return "\n".join(lines) + "\n"


def _dirs(service: ZkService) -> str:
    """ZooKeeper's `dirs`: bytes of snapshots (datadir) and of the log (logdir)."""
    root = service.node.config.data_dir
    total = _tree_bytes(root)
    log_bytes = _tree_bytes(root / LOG_DIR)
    return f"datadir_size: {total - log_bytes}\nlogdir_size: {log_bytes}\n"


def _tree_bytes(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for entry in path.rglob("*"):
            with contextlib.suppress(OSError):
                if entry.is_file():
                    total += entry.stat().st_size
    return total


def _srst(service: ZkService) -> str:
    """ZooKeeper's `srst` (ServerStats.reset): latency and packet counters back to 0."""
    service.latency_min = service.latency_max = service.latency_total = 0.0
    service.latency_count = 0
    service.packets_received = service.packets_sent = 0
    return "Server stats reset.\n"


def _crst(service: ZkService) -> str:
    """ZooKeeper's `crst`: every connection's packet counters back to 0."""
    for conn in service.connections.values():
        conn.received = conn.sent = 0
    return "Connection stats reset.\n"
