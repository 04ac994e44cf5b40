"""Every bound in one place, with their relationships asserted at import time.

Overload behaviour is explicit: a full queue blocks the producer (backpressure) or the
request is rejected with a clear error; nothing grows without bound.
"""

from __future__ import annotations

# Raft timing (logical ticks; the shells map wall time to ticks).
TICK_MS = 10
# Heartbeats every 100 ms: each one wakes every controller, and a wake-up costs 0.3-0.5 ms of
# CPU on a small VM, so 50 ms kept an idle quorum at 4-5 % of a core (docs/performance.md).
# Still 10x faster than KRaft's defaults (election timeout 1 s, fetch timeout 2 s).
HEARTBEAT_TICKS = 10  # 100 ms
ELECTION_TICKS = 30  # 300 ms, randomised to [ELECTION_TICKS, 2 * ELECTION_TICKS)

# Replication.
MAX_INFLIGHT_APPENDS = 64  # per follower, pipelined AppendRequests not yet acknowledged
MAX_APPEND_BYTES = 1 << 20  # payload bytes per AppendRequest
MAX_APPEND_ENTRIES = 4096  # entries per AppendRequest
MAX_UNCOMMITTED_ENTRIES = 20_000  # leader stops taking proposals beyond this
SNAPSHOT_CHUNK_BYTES = 256 * 1024

# Framing.
MAX_PEER_FRAME_BYTES = 16 << 20
MAX_ADMIN_FRAME_BYTES = 4 << 20
MAX_ENTRY_BYTES = 1 << 20
# ZooKeeper's jute.maxbuffer default (BinaryInputArchive): the largest request frame, length
# prefix excluded, a client may send; one byte more closes the connection.
JUTE_MAX_BUFFER = 0xFFFFF

# The ZooKeeper service's write path (controller/service/). Every queue is bounded: a
# controller over its limit stops reading client sockets (TCP pushes back on the clients),
# and the leader's backlog is bounded because every controller's outstanding requests are.
GLOBAL_OUTSTANDING_LIMIT = 1000  # ZooKeeper's globalOutstandingLimit: requests per controller
MAX_OUTSTANDING_PER_CONNECTION = 1000  # requests queued on one connection
MAX_REPLY_BACKLOG_BYTES = 4 << 20  # replies waiting for a client that does not read them
MAX_FORWARD_BYTES = 4 << 20  # command bytes per Forward frame
FORWARD_RETRY_S = 0.05  # unsent forwards (no leader, link full, refused) are retried this often
STUCK_WRITE_S = 5.0  # a request whose entry never came back fails with connection loss

# Storage.
SEGMENT_BYTES = 64 << 20
SNAPSHOT_INTERVAL_ENTRIES = 100_000

assert ELECTION_TICKS > 2 * HEARTBEAT_TICKS
assert MAX_APPEND_BYTES >= MAX_ENTRY_BYTES
assert JUTE_MAX_BUFFER <= MAX_ENTRY_BYTES
assert MAX_PEER_FRAME_BYTES > MAX_APPEND_BYTES + SNAPSHOT_CHUNK_BYTES
assert MAX_UNCOMMITTED_ENTRIES >= MAX_APPEND_ENTRIES
assert MAX_FORWARD_BYTES + MAX_ENTRY_BYTES < MAX_PEER_FRAME_BYTES
