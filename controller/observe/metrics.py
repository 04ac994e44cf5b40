"""`/metrics`: Prometheus text exposition of one controller.

A custom prometheus-client `Collector` reads the node's state at scrape time (nothing on the
Raft loop's hot paths is instrumented); the registry is per node, so several nodes in one
process (tests) do not collide. Names follow Kafka's KRaft raft-metrics and KafkaController
metrics (as the JMX exporter spells them) and ZooKeeper's Prometheus metrics provider (the
`mntr` keys without `zk_`) where one exists; ours are prefixed `kraft_`. Every metric is
listed in docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller import limits
from controller.observe.views import as_number

if TYPE_CHECKING:
    from controller.observe.views import Observed

RAFT_ROLES = ("leader", "follower", "candidate", "pre_candidate", "observer")  # RaftCore.role


ZK_HELP = {
    "avg_latency": "Average request latency in ms (ZooKeeper mntr zk_avg_latency)",
    "max_latency": "Maximum request latency in ms",
    "min_latency": "Minimum request latency in ms",
    "packets_received": "Client packets received",
    "packets_sent": "Client packets sent",
    "num_alive_connections": "Open client connections",
    "outstanding_requests": "Requests queued and not yet answered",
    "znode_count": "Znodes in the data tree",
    "watch_count": "Watches set by this controller's clients",
    "ephemerals_count": "Ephemeral znodes",
    "approximate_data_size": "Approximate bytes of znode paths and data",
    "session_count": "Open sessions (quorum-wide, replicated)",
    "last_zxid": "Zxid of the last applied entry",
    "followers": "Followers and observers of the leader (leader only)",
    "synced_followers": "Followers whose log reaches the commit index (leader only)",
    "pending_syncs": "Pending syncs (leader only; always 0)",
}


class ControllerCollector(Collector):
    """Reads Raft, ZooKeeper-service and broker-controller figures at scrape time."""

    def __init__(self, observed: Observed) -> None:
        self.observed = observed

    def collect(self) -> Iterator[Metric]:
        yield from self._raft()
        yield from self._zookeeper()
        yield from self._brokers()

    def _raft(self) -> Iterator[Metric]:
        node = self.observed.node
        core = node.core
        leader = core.leader_id

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        yield gauge(
            "kafka_raft_current_leader",
            "Id of the known quorum leader, -1 if none",
            leader if leader is not None else -1,
        )
        yield gauge("kafka_raft_current_epoch", "Current Raft term (KRaft's epoch)", core.term)
        yield gauge(
            "kafka_raft_high_watermark", "Commit index known to this controller", core.commit_index
        )
        yield gauge(
            "kafka_raft_log_end_offset", "Index of the last entry in the local log", core.last_index
        )
        yield gauge(
            "kraft_raft_applied_index", "Index of the last entry applied here", core.applied_index
        )
        yield gauge(
            "kraft_raft_log_start_offset", "First index still held in the log", core.first_index
        )
        state = GaugeMetricFamily(
            "kafka_raft_current_state", "1 for this controller's Raft role", labels=["state"]
        )
        for role in RAFT_ROLES:
            state.add_metric([role], 1.0 if core.role == role else 0.0)
        yield state
        yield counter(
            "kraft_raft_elections_started",
            "Elections this controller started",
            core.elections_started(),
        )
        yield counter(
            "kraft_raft_leader_changes", "Role or known-leader changes seen", node.leader_changes
        )
        yield counter("kraft_raft_fsyncs", "fsync calls on the log", node.fsyncs)
        yield counter("kraft_raft_snapshots_taken", "Snapshots written", node.snapshots_taken)
        yield counter(
            "kraft_raft_snapshots_installed",
            "Snapshots received from the leader",
            node.snapshots_installed,
        )
        lag = GaugeMetricFamily(
            "kraft_raft_follower_lag",
            "Entries between the leader's log end and a member's match index (leader only)",
            labels=["node_id", "kind"],
        )
        contact = GaugeMetricFamily(
            "kraft_raft_follower_last_contact_seconds",
            "Seconds since the leader last heard from a member (leader only)",
            labels=["node_id", "kind"],
        )
        for peer, pr in sorted(core.progress().items()):
            if peer == node.node_id:
                continue
            labels = [str(peer), "voter" if pr.is_voter else "observer"]
            lag.add_metric(labels, max(0, core.last_index - pr.match_index))
            contact.add_metric(labels, pr.last_contact_ticks * limits.TICK_MS / 1000)
        yield lag
        yield contact

    def _zookeeper(self) -> Iterator[Metric]:
        from controller.service.fourletter import mntr_values

        for key, raw in mntr_values(self.observed.service):
            name = key.removeprefix("zk_")
            value = as_number(raw)
            if name == "server_state" or not isinstance(value, int | float):
                continue
            doc = ZK_HELP.get(name, f"ZooKeeper mntr {key}")
            yield GaugeMetricFamily(name, doc, value=value)
        stats = self.observed.service.stats()
        yield GaugeMetricFamily(
            "kraft_zk_tracked_sessions",
            "Sessions whose expiry this controller tracks (leader only)",
            value=stats.get("tracked_sessions", 0),
        )

    def _brokers(self) -> Iterator[Metric]:
        observed = self.observed
        bc = observed.brokers
        image = bc.image
        figures = observed.figures()
        timeline = observed.timeline

        def kc(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"kafka_controller_kafkacontroller_{name}", doc, value=value)

        yield kc(
            "activecontrollercount",
            "1 if this controller is the active controller",
            1 if bc.is_active else 0,
        )
        yield kc("activebrokercount", "Registered (live) brokers", len(image.brokers))
        yield kc("globaltopiccount", "Topics", len(image.topics))
        yield kc("globalpartitioncount", "Partitions", image.partition_count())
        yield kc("offlinepartitionscount", "Partitions without a live leader", len(figures.offline))
        yield kc(
            "preferredreplicaimbalancecount",
            "Partitions not led by their preferred replica",
            figures.not_preferred,
        )
        yield GaugeMetricFamily(
            "kraft_under_replicated_partitions",
            "Partitions whose ISR is smaller than their replica list (cluster-wide)",
            value=len(figures.under_replicated),
        )
        yield GaugeMetricFamily(
            "kraft_controller_epoch",
            "Controller epoch (/controller_epoch)",
            value=image.controller_epoch,
        )
        leaders = GaugeMetricFamily(
            "kraft_broker_leader_partitions", "Partitions led per live broker", labels=["broker"]
        )
        for broker, count in figures.leaders.items():
            leaders.add_metric([str(broker)], count)
        yield leaders
        yield CounterMetricFamily(
            "kraft_controller_activations",
            "Times this controller became active",
            value=bc.activations,
        )
        yield CounterMetricFamily(
            "kraft_controller_partition_changes",
            "Partition changes this controller wrote while active",
            value=bc.partition_changes,
        )
        elections = CounterMetricFamily(
            "kraft_partition_leader_elections",
            "Partition leader changes applied here since start, by cause",
            labels=["cause"],
        )
        for cause, count in timeline.leader_elections.items():
            elections.add_metric([cause], count)
        yield elections
        yield CounterMetricFamily(
            "kraft_quorum_elections",
            "Quorum leader changes seen here since start (timeline)",
            value=timeline.elections,
        )
        yield CounterMetricFamily(
            "kraft_broker_registrations",
            "Broker registrations seen since start",
            value=timeline.broker_joins,
        )
        yield CounterMetricFamily(
            "kraft_broker_deaths",
            "Broker registrations that went away since start",
            value=timeline.broker_deaths,
        )


def make_registry(observed: Observed) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControllerCollector(observed))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
