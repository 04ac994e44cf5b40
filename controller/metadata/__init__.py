"""The broker metadata controller: Kafka's ZooKeeper-era layout in the coordination tree.

Pure layer (no I/O, no clock): `records` (znode payloads), `image` (an immutable view of
brokers, topics and partitions, updated from deltas), `ops` (tree operations a decision
returns), and the decision modules (`placement`, `election`, `decisions`). The trio shell that
runs the active controller on the Raft leader is `controller.service.broker_controller`.
"""
