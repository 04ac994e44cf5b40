"""What the admin server shows, computed at request time from the live objects of one
controller: `/commands/<name>` (ZooKeeper AdminServer-style JSON), the console's state,
readiness. The four-letter words' own functions (`controller.service.fourletter`) produce
the ZooKeeper figures, so `mntr` and `/commands/mntr` cannot disagree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from controller.metadata.decisions import (
    leader_counts,
    offline_partitions,
    under_replicated_partitions,
)
from controller.metadata.image import MetadataImage
from controller.metadata.records import NO_LEADER
from controller.node.admin_client import AdminError, query_status
from controller.node.config import Address, ConfigError
from controller.service.fourletter import VERSION, mntr_values, word_text

if TYPE_CHECKING:
    from controller.node.server import ControllerNode
    from controller.observe.timeline import Timeline
    from controller.service.broker_controller import BrokerController
    from controller.service.zk_service import ZkService

READY_MAX_APPLY_LAG = 1000
"""`/readyz` fails while this controller's applied index is further behind its commit index."""

LEADER_STATUS_TIMEOUT_S = 0.5
"""A follower's console asks the leader for the quorum's lags at most this long."""

CONSOLE_MAX_PARTITIONS = 5000
"""The console's state lists at most this many partitions (the rest are counted only)."""


@attrs.frozen
class ImageFigures:
    """O(partitions) figures of one image, computed once per image (the image is immutable,
    so a scrape or console refresh on an unchanged image costs nothing)."""

    offline: frozenset[tuple[str, int]]
    under_replicated: frozenset[tuple[str, int]]
    leaders: dict[int, int]
    not_preferred: int
    assigned_brokers: frozenset[int]  # every broker id in some replica list


class Observed:
    """One controller's live objects, as the admin server reads them."""

    def __init__(
        self,
        node: ControllerNode,
        service: ZkService,
        brokers: BrokerController,
        timeline: Timeline,
    ) -> None:
        self.node = node
        self.service = service
        self.brokers = brokers
        self.timeline = timeline
        self.admin_url = ""
        self._figures: tuple[MetadataImage, ImageFigures] | None = None

    def figures(self) -> ImageFigures:
        """The current image's figures: cached, else computed here (call `refresh` first
        from async code, so the O(partitions) work happens in a worker thread)."""
        image = self.brokers.image
        cached = self._figures
        if cached is None or cached[0] is not image:
            cached = self._figures = (image, image_figures(image))
        return cached[1]

    async def refresh(self) -> None:
        """Compute the current image's figures in a worker thread if they are stale: at
        100,000 partitions this takes a noticeable time, which must not stall the Raft loop
        on this thread (the image is immutable, so reading it from a thread is safe)."""
        for _ in range(3):  # the image may move on while the thread runs
            image = self.brokers.image
            cached = self._figures
            if cached is not None and cached[0] is image:
                return
            figures = await trio.to_thread.run_sync(image_figures, image)
            self._figures = (image, figures)

    # ------------------------------------------------------------------ health

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details): a leader is known and the applied index is within
        READY_MAX_APPLY_LAG entries of the commit index."""
        core = self.node.core
        lag = max(0, core.commit_index - core.applied_index)
        reasons = []
        if core.leader_id is None:
            reasons.append("no known leader")
        if lag > READY_MAX_APPLY_LAG:
            reasons.append(f"applied index lags the commit index by {lag} entries")
        return not reasons, {
            "ready": not reasons,
            "reasons": reasons,
            "node_id": self.node.node_id,
            "role": core.role,
            "leader_id": core.leader_id,
            "commit_index": core.commit_index,
            "applied_index": core.applied_index,
        }

    # ------------------------------------------------------------------ commands

    def command(self, name: str) -> dict[str, Any] | None:
        """`/commands/<name>`: a JSON object, or None for an unknown command."""
        handler = self.commands().get(name)
        if handler is None:
            return None
        return {"command": name, "error": None} | handler()

    def commands(self) -> dict[str, Callable[[], dict[str, Any]]]:
        words = {
            "srvr": lambda: _colon_fields(word_text(self.service, "srvr")),
            "stat": lambda: (
                _colon_fields(word_text(self.service, "srvr"))
                | {"connections": _cons(word_text(self.service, "cons"))}
            ),
            "mntr": self.mntr,
            "conf": lambda: _equals_fields(word_text(self.service, "conf")),
            "envi": lambda: _equals_fields(word_text(self.service, "envi")),
            "cons": lambda: {"connections": _cons(word_text(self.service, "cons"))},
            "wchs": lambda: _wchs(word_text(self.service, "wchs")),
            "wchc": lambda: {"session_watches": _grouped(word_text(self.service, "wchc"))},
            "wchp": lambda: {"path_watches": _grouped(word_text(self.service, "wchp"))},
            "dump": lambda: {"text": word_text(self.service, "dump")},
            "dirs": lambda: _colon_fields(word_text(self.service, "dirs")),
            # ZooKeeper's AdminServer names, with the four-letter words as aliases.
            "stat_reset": lambda: _reset(word_text(self.service, "srst")),
            "srst": lambda: _reset(word_text(self.service, "srst")),
            "connection_stat_reset": lambda: _reset(word_text(self.service, "crst")),
            "crst": lambda: _reset(word_text(self.service, "crst")),
            "ruok": dict,
            "isro": lambda: {"read_only": False},
            "leader": self.leader,
            "quorum": self.quorum,
            "brokers": self.broker_list,
            "topics": lambda: self.topics(),  # served by `topics_json` over HTTP
        }
        return words

    def mntr(self) -> dict[str, Any]:
        """`mntr`'s figures under ZooKeeper's AdminServer names (without `zk_`)."""
        values = mntr_values(self.service)
        return {key.removeprefix("zk_"): as_number(value) for key, value in values}

    def leader(self) -> dict[str, Any]:
        node = self.node
        leader = node.core.leader_id
        return {
            "is_leader": node.core.is_leader,
            "leader_id": leader if leader is not None else -1,
            "leader_ip": node.leader_client_address().rsplit(":", 1)[0],
            "leader_client_address": node.leader_client_address(),
            "term": node.core.term,
        }

    def quorum(self) -> dict[str, Any]:
        status = self.node.status()
        return {
            key: status[key]
            for key in (
                "node_id",
                "role",
                "leader_id",
                "leader_client_address",
                "term",
                "commit_index",
                "applied_index",
                "last_index",
                "first_index",
                "elections_started",
                "leader_changes",
                "fsyncs",
                "voters",
                "observers",
            )
        }

    def broker_list(self) -> dict[str, Any]:
        image = self.brokers.image
        figures = self.figures()
        leaders = figures.leaders
        gone = sorted(figures.assigned_brokers - set(image.brokers))
        return {
            "controller_epoch": image.controller_epoch,
            "active_controller": image.controller.brokerid if image.controller else None,
            "brokers": [
                {
                    "id": b.id,
                    "rack": b.rack,
                    "host": b.registration.host,
                    "port": b.registration.port,
                    "epoch": b.epoch,
                    "live": True,
                    "leaders": leaders.get(b.id, 0),
                }
                for b in sorted(image.brokers.values(), key=lambda b: b.id)
            ],
            # Replicas of some partition without a registration: offline brokers.
            "offline_brokers": gone,
        }

    def topics(self, max_partitions: int | None = None) -> dict[str, Any]:
        return topics_view(self.brokers.image, self.figures(), max_partitions)

    async def topics_json(self) -> bytes:
        """`/commands/topics` encoded in a worker thread (all partitions: it may be large)."""
        await self.refresh()
        image, figures = self.brokers.image, self.figures()

        def encode() -> bytes:
            body = {"command": "topics", "error": None} | topics_view(image, figures, None)
            return json.dumps(body, separators=(",", ":")).encode()

        return await trio.to_thread.run_sync(encode)

    # ------------------------------------------------------------------ console

    async def leader_quorum(self) -> dict[str, Any]:
        """The quorum as the leader sees it (lag and last contact of every member are only
        known there): local on the leader; on a follower one bounded status request to the
        leader's client port, falling back to the local view."""
        local = self.quorum()
        address = self.node.leader_client_address()
        if self.node.core.is_leader or not address:
            return local | {"view_from": self.node.node_id}
        try:
            status = await query_status(Address.parse(address), LEADER_STATUS_TIMEOUT_S)
        except (AdminError, ConfigError):
            return local | {"view_from": self.node.node_id}
        if status.get("role") != "leader":
            return local | {"view_from": self.node.node_id}
        merged = {key: status.get(key, value) for key, value in local.items()}
        # This controller's own figures stay its own.
        for key in ("node_id", "role", "commit_index", "applied_index", "last_index"):
            merged[key] = local[key]
        merged["leader_commit_index"] = status.get("commit_index")
        return merged | {"view_from": status.get("node_id")}

    async def console_state(self) -> dict[str, Any]:
        """Everything the console's page shows except the timeline (which it streams)."""
        node = self.node
        quorum = await self.leader_quorum()
        await self.refresh()  # after the await above: the image may have moved meanwhile
        image, figures = self.brokers.image, self.figures()
        brokers = self.broker_list()
        topics = await trio.to_thread.run_sync(topics_view, image, figures, CONSOLE_MAX_PARTITIONS)
        return {
            "answered_by": {
                "node_id": node.node_id,
                "role": node.core.role,
                "client_address": node.client_address,
                "admin_url": self.admin_url,
                "version": VERSION,
            },
            "quorum": quorum,
            "brokers": brokers,
            "topics": topics,
            "broker_controller": self.brokers.stats(),
        }


def topics_view(
    image: MetadataImage, figures: ImageFigures, max_partitions: int | None
) -> dict[str, Any]:
    """Every topic and partition (at most `max_partitions` listed); a pure function of an
    immutable image, so it may run in a worker thread."""
    out = []
    listed = 0
    truncated = False
    for name in sorted(image.topics):
        topic = image.topics[name]
        parts = []
        room = None if max_partitions is None else max(0, max_partitions - listed)
        numbers = sorted(topic.assignment) if room != 0 else []
        if room is not None and len(topic.assignment) > room:
            truncated = True
            numbers = numbers[:room]
        for p in numbers:
            listed += 1
            state = topic.partitions.get(p)
            parts.append(
                {
                    "partition": p,
                    "leader": state.leader if state is not None else NO_LEADER,
                    "leader_epoch": state.leader_epoch if state is not None else -1,
                    "replicas": list(topic.replicas(p)),
                    "isr": list(state.isr) if state is not None else [],
                    "offline": (name, p) in figures.offline or state is None,
                    "under_replicated": (name, p) in figures.under_replicated,
                }
            )
        out.append(
            {
                "name": name,
                "topic_id": topic.topic_id,
                "partition_count": len(topic.assignment),
                "partitions": parts,
            }
        )
    return {
        "topics": out,
        "partitions": image.partition_count(),
        "offline_partitions": len(figures.offline),
        "under_replicated_partitions": len(figures.under_replicated),
        "truncated": truncated,
    }


def image_figures(image: MetadataImage) -> ImageFigures:
    """One image's O(partitions) figures (pure: may run in a worker thread)."""
    not_preferred = 0
    assigned: set[int] = set()
    for topic in image.topics.values():
        for replicas in topic.assignment.values():
            assigned.update(replicas)
        for p, state in topic.partitions.items():
            replicas = topic.replicas(p)
            if replicas and state.leader != replicas[0]:
                not_preferred += 1
    return ImageFigures(
        frozenset(offline_partitions(image)),
        frozenset(under_replicated_partitions(image)),
        leader_counts(image),
        not_preferred,
        frozenset(assigned),
    )


def as_number(value: object) -> object:
    """mntr's values as JSON numbers where they are numbers ("0x1f" zxids included)."""
    if isinstance(value, int | float):
        return value
    text = str(value)
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _snake(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.strip().lower()).strip("_")


def _reset(reply: str) -> dict[str, Any]:
    """A reset command's answer: the four-letter word's sentence, without its newline."""
    return {"text": reply.strip()}


def _colon_fields(text: str) -> dict[str, Any]:
    """`Key: value` lines (srvr, dirs) as {"key": value}."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith(" "):
            out[_snake(key)] = as_number(value.strip())
    return out


def _equals_fields(text: str) -> dict[str, Any]:
    """`key=value` lines (conf, envi) as {"key": value}."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = as_number(value.strip())
    return out


_CONN = re.compile(r"^\s*/(?P<remote>\S+?)\[\d+\]\((?P<fields>[^)]*)\)")


def _cons(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        match = _CONN.match(line)
        if match is None:
            continue
        conn: dict[str, Any] = {"remote_socket_address": match["remote"]}
        for field in match["fields"].split(","):
            key, _, value = field.partition("=")
            conn[key] = as_number(value)
        out.append(conn)
    return out


def _wchs(text: str) -> dict[str, Any]:
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    connections, paths, total = [*numbers, 0, 0, 0][:3]
    return {"num_connections": connections, "num_paths": paths, "num_total_watches": total}


def _grouped(text: str) -> dict[str, list[str]]:
    """wchc/wchp: a heading line, then tab-indented members."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("\t"):
            if current is not None:
                current.append(line.strip())
        else:
            current = out.setdefault(line.strip(), [])
    return out
