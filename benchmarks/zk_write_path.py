"""Where a lone client's write spends its time: timestamps along the whole path.

    python -m benchmarks.zk_write_path [--ops 1500] [--op set|create]

Starts a 3-controller quorum (fsync on) whose processes record, with the system-wide
monotonic clock, when a client request arrives, is forwarded, proposed, appended and
fsynced, replicated, acknowledged, committed, applied and answered (hooks installed by a
`sitecustomize` on the controllers' PYTHONPATH; the product code is unchanged). One client
then sends `--ops` requests one at a time on a follower, and again on the leader, and the
table gives the median and p90 of each stage across requests.
"""

from __future__ import annotations

import argparse
import atexit
import bisect
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRACE_ENV = "KRAFT_TRACE_DIR"


# ---------------------------------------------------------------------- in the controllers


def install_hooks() -> None:
    """Record trace events in this controller process; dumped to $KRAFT_TRACE_DIR at exit."""
    from controller.node import main, server

    events: list[tuple[int, str, str]] = []
    now = time.monotonic_ns
    node_cls = server.ControllerNode
    names: dict[str, int] = {}

    def note(event: str, detail: str = "") -> None:
        events.append((now(), event, detail))

    class TracedStream:
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def __getattr__(self, name: str) -> Any:
            return getattr(self._stream, name)

        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            data: bytes = await self._stream.receive_some(max_bytes)
            note("client_recv", str(len(data)))
            return data

        async def send_all(self, data: bytes) -> None:
            note("client_send", str(len(data)))
            await self._stream.send_all(data)

    def wrap(
        name: str, before: Callable[..., Any] | None, after: Callable[..., Any] | None
    ) -> None:
        original = getattr(node_cls, name)

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before(self, *args)
            result = original(self, *args, **kwargs)
            if after is not None:
                after(self, *args)
            return result

        setattr(node_cls, name, method)

    def msg_detail(msg: Any) -> str:
        n = len(getattr(msg, "entries", ()) or ())
        return f"{type(msg).__name__}:{msg.src}>{msg.dst}:{n}"

    wrap("send_peer", lambda s, peer, frame: note("forward_send", type(frame).__name__), None)
    wrap("submit", lambda s, *a: note("submit"), None)
    wrap("_propose_pending", lambda s: s._pending and note("propose", str(len(s._pending))), None)
    wrap(
        "_persist",
        lambda s, rd: note("persist_start", f"{len(rd.entries)}:{threading.current_thread().name}"),
        lambda s, rd: note("persist_end", str(len(rd.entries))),
    )
    wrap(
        "_send",
        lambda s, msgs: [note("send", msg_detail(m)) for m in msgs],
        lambda s, msgs: msgs and note("sent", ""),
    )
    wrap(
        "_handle_input",
        lambda s, item: hasattr(item, "src") and note("step", msg_detail(item)),
        None,
    )
    # Turns run inline by the task that read the input (a peer reader, the ticker).
    wrap("_run_turn", lambda s, msgs: [note("step", msg_detail(m)) for m in msgs], None)
    wrap(
        "_apply",
        lambda s, entries: note("apply_start", str(len(entries))),
        lambda s, entries: note("apply_end", str(len(entries))),
    )
    original_build = main.build_node

    def build_node(config: Any) -> Any:
        node = original_build(config)
        names["id"] = config.node_id
        service = node.service
        on_peer_frame = service.on_peer_frame
        handle_client = service.handle_client

        def traced_peer_frame(src: int, frame: Any) -> None:
            note("forward_recv", type(frame).__name__)
            on_peer_frame(src, frame)

        async def traced_client(stream: Any, first: bytes) -> None:
            address = str(stream.socket.getpeername()[0])
            await handle_client(TracedStream(stream), first, address)

        service.on_peer_frame = traced_peer_frame
        service.handle_client = traced_client
        return node

    main.build_node = build_node

    def dump() -> None:
        path = Path(os.environ[TRACE_ENV]) / f"node-{names.get('id', os.getpid())}.json"
        path.write_text(json.dumps(events))

    atexit.register(dump)


# ---------------------------------------------------------------------- analysis

Trace = list[tuple[int, str, str]]
Milestone = tuple[str, str, str, str]
"""(stage name, "server" | "leader", event, detail substring)"""


def milestones(on_follower: bool, fid: int, lid: int) -> list[Milestone]:
    if not on_follower:
        return [
            ("leader reads the request", "leader", "client_recv", ""),
            ("leader proposes it", "leader", "propose", ""),
            ("append sent to followers", "leader", "send", f"AppendRequest:{lid}>"),
            ("sending it returned", "leader", "sent", ""),
            ("leader's write starts", "leader", "persist_start", ""),
            ("leader write + fsync done", "leader", "persist_end", ""),
            ("first follower ack stepped", "leader", "step", "AppendResponse"),
            ("applied on the leader", "leader", "apply_end", ""),
            ("reply written", "leader", "client_send", ""),
        ]
    return [
        ("follower reads the request", "server", "client_recv", ""),
        ("forwarded to the leader", "server", "forward_send", "Forward"),
        ("leader receives the forward", "leader", "forward_recv", "Forward"),
        ("leader proposes it", "leader", "propose", ""),
        ("append sent to followers", "leader", "send", f"AppendRequest:{lid}>"),
        ("follower steps the append", "server", "step", "AppendRequest"),
        ("follower's write starts", "server", "persist_start", ""),
        ("follower write + fsync done", "server", "persist_end", ""),
        ("follower ack sent", "server", "send", f"AppendResponse:{fid}>"),
        ("leader steps this ack", "leader", "step", f"AppendResponse:{fid}>"),
        ("commit notice sent", "leader", "send", f">{fid}"),
        ("follower steps the commit", "server", "step", f"{lid}>{fid}"),
        ("applied on the follower", "server", "apply_end", ""),
        ("reply written", "server", "client_send", ""),
    ]


def _find(
    trace: Trace, times: list[int], after: int, before: int, event: str, detail: str
) -> int | None:
    for t, e, d in trace[bisect.bisect_left(times, after) :]:
        if t > before:
            return None
        if e == event and detail in d:
            return t
    return None


def stages(
    client: list[tuple[int, int]], traces: dict[str, Trace], plan: list[Milestone]
) -> dict[str, list[float]]:
    """Per-stage durations (ms, since the previous milestone) of each request."""
    times = {k: [e[0] for e in v] for k, v in traces.items()}
    out: dict[str, list[float]] = {}
    for sent, got in client:
        previous = sent
        for name, where, event, detail in plan:
            t = _find(traces[where], times[where], previous, got, event, detail)
            if t is None:
                continue  # e.g. the commit came with the other follower's ack: skip the stage
            out.setdefault(name, []).append((t - previous) / 1e6)
            previous = t
        out.setdefault("client gets the reply", []).append((got - previous) / 1e6)
        out.setdefault("total", []).append((got - sent) / 1e6)
    return out


def report(title: str, durations: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    print(f"{'stage (time since the previous one)':<42}{'median ms':>10}{'p90 ms':>9}{'n':>6}")
    for name, values in durations.items():
        values.sort()
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"{name:<42}{statistics.median(values):>10.3f}{p90:>9.3f}{len(values):>6}")


# ---------------------------------------------------------------------- driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1500)
    parser.add_argument("--op", choices=["set", "create"], default="set")
    parser.add_argument("--keep", type=Path, help="keep the data and traces in this directory")
    args = parser.parse_args()
    from benchmarks.zk_load import OP_CREATE, OP_SET_DATA
    from benchmarks.zk_lone import _BlockingSession
    from benchmarks.zk_systems import Ours, roles
    from controller.localquorum import LocalQuorum

    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="kraft-trace-") as scratch:
        tmp = str(args.keep or scratch)
        hook_dir, trace_dir = Path(tmp) / "hook", Path(tmp) / "trace"
        hook_dir.mkdir()
        trace_dir.mkdir()
        (hook_dir / "sitecustomize.py").write_text(
            "from benchmarks.zk_write_path import install_hooks\ninstall_hooks()\n"
        )
        os.environ[TRACE_ENV] = str(trace_dir)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(hook_dir), str(repo)])
        quorum = LocalQuorum(Path(tmp) / "data", fsync=True)
        clients: dict[str, list[tuple[int, int]]] = {}
        with quorum:
            quorum.wait_for_leader()
            time.sleep(1.0)
            system = Ours(quorum)
            leader, follower = roles(system)
            for where, server in (("follower", follower), ("leader", leader)):
                session = _BlockingSession(*system.address(server))
                root = f"/trace-{where}".encode()
                session.call(1, OP_CREATE, root, b"")
                session.call(2, OP_CREATE, root + b"/k", b"x" * 100)
                log = clients[where] = []
                for i in range(args.ops + 100):
                    path = root + (b"/k" if args.op == "set" else b"/c%d" % i)
                    op = OP_SET_DATA if args.op == "set" else OP_CREATE
                    sent = time.monotonic_ns()
                    assert session.call(10 + i, op, path, b"x" * 100) == 0
                    if i >= 100:  # warm-up
                        log.append((sent, time.monotonic_ns()))
                    time.sleep(0.002)  # let the quorum go quiet between requests
                session.close()
            if roles(system)[0] != leader:
                sys.exit("the leader changed during the run; try again")
        traces: dict[int, Trace] = {
            int(p.stem.split("-")[1]): [(e[0], e[1], e[2]) for e in json.loads(p.read_text())]
            for p in trace_dir.glob("node-*.json")
        }
    for where in ("follower", "leader"):
        server = follower if where == "follower" else leader
        plan = milestones(where == "follower", follower, leader)
        chosen = {"server": sorted(traces[server]), "leader": sorted(traces[leader])}
        durations = stages(clients[where], chosen, plan)
        report(f"lone {args.op} on the {where} ({args.ops} requests, fsync on)", durations)


if __name__ == "__main__":
    main()
