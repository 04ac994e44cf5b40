"""Cost of observability: the admin server's work at 100,000 partitions, and what scraping
does to commit throughput.

    python -m benchmarks.observe_bench [--seconds 5] [--scrape-interval 0.1] [--skip-quorum]

1. In process, on a synthetic image of 100,000 partitions: the per-image figures behind
   `/metrics` (computed once per image, in a worker thread), the console's capped topic list,
   the full `/commands/topics` body, and the timeline's cost for a batch touching one
   partition (it diffs only touched paths).
2. A real 3-controller quorum (fsync off, so the event loop is the bottleneck): commit rate
   and p99 latency of pipelined proposals (`benchmarks.raft_bench.Load`) without scraping,
   then while `/metrics` and `/api/state` of the leader are fetched every `--scrape-interval`
   seconds (150x Prometheus' default rate), with the scrape latencies.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import attrs
import trio

from benchmarks.raft_bench import Load, pct
from controller.coord.commands import Applied
from controller.localquorum import LocalQuorum
from controller.metadata.image import BrokerImage, MetadataImage, PartitionImage, TopicImage
from controller.metadata.records import BrokerRegistration, PartitionState
from controller.node.config import Address
from controller.observe.timeline import Timeline
from controller.observe.views import CONSOLE_MAX_PARTITIONS, image_figures, topics_view
from controller.raft.types import Entry, EntryKind

PARTITIONS = 100_000
TOPICS = 100


def synthetic_image(partitions: int = PARTITIONS, topics: int = TOPICS) -> MetadataImage:
    brokers = {
        b: BrokerImage(b, BrokerRegistration("h", 9000 + b, [], f"r{b % 3}", "0", "x"), b, b)
        for b in range(1, 10)
    }
    per_topic = partitions // topics
    out = {}
    for t in range(topics):
        replicas = {p: tuple(1 + (p + k) % 9 for k in range(3)) for p in range(per_topic)}
        parts = {
            p: PartitionImage(p, PartitionState(r[0], 0, list(r), 1), 0, 1)
            for p, r in replicas.items()
        }
        name = f"topic-{t}"
        out[name] = TopicImage(name, name, MappingProxyType(replicas), 0, MappingProxyType(parts))
    return MetadataImage(brokers=MappingProxyType(brokers), topics=MappingProxyType(out))


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - began) * 1000, result


def in_process() -> None:
    image = synthetic_image()
    ms, figures = timed(image_figures, image)
    print(f"{PARTITIONS} partitions: figures (once per image, worker thread) {ms:.0f} ms")
    ms, _ = timed(topics_view, image, figures, CONSOLE_MAX_PARTITIONS)
    print(f"  console topic list ({CONSOLE_MAX_PARTITIONS} partitions) {ms:.1f} ms")
    ms, _ = timed(topics_view, image, figures, None)
    print(f"  /commands/topics body (all, worker thread) {ms:.0f} ms")
    holder: Any = SimpleNamespace(image=image)
    timeline = Timeline(holder)
    topic = image.topics["topic-7"]
    parts = dict(topic.partitions)
    parts[3] = PartitionImage(3, PartitionState(2, 1, [2], 1), 1, 2)
    holder.image = attrs.evolve(
        image,
        topics=MappingProxyType(
            dict(image.topics)
            | {"topic-7": attrs.evolve(topic, partitions=MappingProxyType(parts))}
        ),
    )
    entry = Entry(1, 2, 2, EntryKind.COMMAND, b"")
    applied = Applied(0, 0, 2, events=((1, "/brokers/topics/topic-7/partitions/3/state"),))  # type: ignore[arg-type]
    ms, _ = timed(timeline.handle_commit, [(entry, applied)])
    print(
        f"  timeline, batch touching 1 partition: {ms * 1000:.0f} us ({len(timeline.events)} event)"
    )


async def http_get(port: int, path: str) -> int:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode()
        )
        size = 0
        async for chunk in stream:
            size += len(chunk)
    return size


def quorum_run(seconds: float, interval: float) -> None:
    with tempfile.TemporaryDirectory(prefix="kraft-obs-bench-") as tmp:
        quorum = LocalQuorum(Path(tmp), fsync=False)
        with quorum:
            status = quorum.wait_for_leader()
            leader = Address.parse(status["leader_client_address"])
            port = quorum.admin_ports[status["node_id"] - 1]
            for scraping in (False, True, False, True):
                load, scrapes = trio.run(measure, quorum, leader, port, scraping, seconds, interval)
                line = (
                    f"{'scraping' if scraping else 'no scrape':>9}: "
                    f"{load.acks / seconds:8.0f} entries/s, "
                    f"p99 {pct(load.latencies, 0.99) * 1e3:.1f} ms"
                )
                if scraping:
                    line += (
                        f"; {len(scrapes)} fetches, p50 {pct(scrapes, 0.5) * 1e3:.1f} ms, "
                        f"p99 {pct(scrapes, 0.99) * 1e3:.1f} ms"
                    )
                print(line, flush=True)


async def measure(
    quorum: LocalQuorum,
    leader: Address,
    port: int,
    scraping: bool,
    seconds: float,
    interval: float,
) -> tuple[Load, list[float]]:
    load = Load(512)
    load.leader = leader
    scrapes: list[float] = []

    async def scraper() -> None:
        while True:
            for path in ("/metrics", "/api/state"):
                began = time.perf_counter()
                await http_get(port, path)
                scrapes.append(time.perf_counter() - began)
            await trio.sleep(interval)

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(load.connection, quorum.addresses)
        if scraping:
            nursery.start_soon(scraper)
        await trio.sleep(1.0)
        load.recording = True
        await trio.sleep(seconds)
        load.recording = False
        nursery.cancel_scope.cancel()
    return load, scrapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--scrape-interval", type=float, default=0.1)
    parser.add_argument("--skip-quorum", action="store_true")
    args = parser.parse_args()
    in_process()
    if not args.skip_quorum:
        quorum_run(args.seconds, args.scrape_interval)


if __name__ == "__main__":
    main()
