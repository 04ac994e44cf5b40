"""Record real ZooKeeper traffic into tests/wire/golden_frames.json.

    python -m tests.wire.record_golden [--out PATH]

Starts one real ZooKeeper server (Debian's package, TTL nodes enabled), puts a loopback TCP
proxy in front of it that cuts both directions into frames, and drives kazoo (plus a raw jute
client for the operations kazoo lacks) through a representative set of operations. Each
connection's frames are written in order with their direction, xid, opcode (a reply's is its
request's), error code and hex payload (without the length prefix). tests/wire/test_golden.py
checks that our records decode and re-encode every one of them byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import socket
import struct
import subprocess
import threading
import time
from typing import Any

from benchmarks.zk_ensemble import ZooKeeperEnsemble, zookeeper_available
from controller.zk.constants import OpCode
from controller.zk.protocol import (
    ClientFramer,
    ConnectedEvent,
    encode_connect_request,
    encode_request,
)
from controller.zk.records import (
    ACL,
    AddWatchRequest,
    CheckVersionRequest,
    ConnectRequest,
    CreateRequest,
    CreateTTLRequest,
    ExistsRequest,
    GetAllChildrenNumberRequest,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    Id,
    MultiRequest,
    RemoveWatchesRequest,
    SetDataRequest,
    SetWatches,
    SetWatches2,
    SyncRequest,
)
from tests.zk.raw import ConnectionClosed, RawClient

DEFAULT_OUT = pathlib.Path(__file__).with_name("golden_frames.json")
OPEN = [ACL(31, Id("world", "anyone"))]
SPECIAL_XIDS = {-1: "notification", -2: "ping", -4: "auth", -8: "setWatches"}


class _Ensemble(ZooKeeperEnsemble):
    def _config(self, server_id: int) -> pathlib.Path:
        path = super()._config(server_id)
        path.write_text(path.read_text() + "extendedTypesEnabled=true\n")
        return path


class Proxy:
    """A loopback TCP proxy recording the frames of every connection, both directions."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.frames: list[tuple[int, str, bytes]] = []  # (connection, direction, payload)
        self.sockets: list[socket.socket] = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                conn = self.connections
                self.connections += 1
                self.sockets += [client, upstream]
            for src, dst, direction in ((client, upstream, "c2s"), (upstream, client, "s2c")):
                threading.Thread(
                    target=self._pump, args=(conn, direction, src, dst), daemon=True
                ).start()

    def _pump(self, conn: int, direction: str, src: socket.socket, dst: socket.socket) -> None:
        buf = b""
        while True:
            try:
                data = src.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            buf += data
            while len(buf) >= 4:
                (length,) = struct.unpack_from(">i", buf)
                if len(buf) < 4 + length:
                    break
                with self.lock:
                    self.frames.append((conn, direction, buf[4 : 4 + length]))
                buf = buf[4 + length :]
            with contextlib.suppress(OSError):
                dst.sendall(data)

    def drop_all(self) -> None:
        """Cut every open connection (clients then reconnect, re-arming their watches)."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.drop_all()


def annotate(frames: list[tuple[int, str, bytes]]) -> list[dict[str, Any]]:
    """Group frames by connection and label them (kind, xid, op, err)."""
    by_conn: dict[int, list[dict[str, Any]]] = {}
    pending: dict[tuple[int, int], int] = {}
    for conn, direction, payload in frames:
        out = by_conn.setdefault(conn, [])
        frame: dict[str, Any] = {"dir": direction}
        first = not any(f["dir"] == direction for f in out)
        if first:
            frame["kind"] = "connect"
        elif direction == "c2s":
            xid, op = struct.unpack_from(">ii", payload)
            frame.update(kind="request", xid=xid, op=op)
            pending[conn, xid] = op
        else:
            xid, _zxid, err = struct.unpack_from(">iqi", payload)
            frame.update(kind="reply", xid=xid, err=err)
            if xid == -1:
                frame.update(kind="notification", op=int(OpCode.NOTIFICATION))
            else:
                op = pending.pop((conn, xid), None)
                if op is None:
                    raise RuntimeError(f"reply to unknown xid {xid} on connection {conn}")
                frame["op"] = op
        if "op" in frame:
            try:
                frame["op_name"] = OpCode(frame["op"]).name
            except ValueError:
                frame["op_name"] = str(frame["op"])
        frame["hex"] = payload.hex()
        out.append(frame)
    return [{"connection": conn, "frames": fs} for conn, fs in sorted(by_conn.items())]


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def drive_kazoo(port: int, proxy: Proxy) -> None:
    from kazoo.client import KazooClient
    from kazoo.exceptions import BadVersionError, NoNodeError, ZookeeperError
    from kazoo.security import make_digest_acl

    events: list[Any] = []
    zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=6.0)
    zk.start(timeout=15)
    try:
        zk.add_auth("digest", "alice:secret")
        zk.create("/g", b"root")
        zk.create("/g/a", b"hello", ephemeral=True)
        zk.create("/g/seq-", b"", sequence=True)
        zk.create("/g/b", include_data=True)  # create2 (kazoo sends b"" for no value)
        zk.create("/g/empty", b"", include_data=True)  # create2, empty data
        zk.create("/g/u", "ünïcödé".encode(), acl=[make_digest_acl("alice", "secret", all=True)])
        zk.exists("/g/a", watch=events.append)
        zk.exists("/g/missing", watch=events.append)
        zk.get("/g/a", watch=events.append)
        zk.get("/g/b")
        zk.get("/g/empty")
        with contextlib.suppress(NoNodeError):
            zk.get("/g/missing")
        zk.get_children("/g", watch=events.append)
        zk.get_children("/g", include_data=True)
        zk.get_acls("/g/u")
        zk.set_acls("/g/b", _open_acl())
        zk.sync("/g")
        zk.set("/g/a", b"world")  # data watch fires
        with contextlib.suppress(BadVersionError):
            zk.set("/g/a", b"x", version=99)
        zk.create("/g/c", b"c")  # child watch fires
        _wait(lambda: len(events) >= 2)
        tx = zk.transaction()
        tx.create("/g/t1", b"t1")
        tx.set_data("/g/c", b"c2")
        tx.check("/g/a", 1)
        tx.delete("/g/c")
        tx.commit()
        tx = zk.transaction()  # fails on the check: error results
        tx.create("/g/t2", b"t2")
        tx.check("/g/a", 42)
        tx.delete("/g/t1")
        tx.commit()
        # Watches pending across the reconnect below.
        zk.get("/g/t1", watch=events.append)
        zk.exists("/g/later", watch=events.append)
        zk.get_children("/g/t1", watch=events.append)
        with contextlib.suppress(ZookeeperError):
            zk.reconfig(joining=None, leaving=None, new_members="server.1=127.0.0.1:1:2")
        time.sleep(2.5)  # idle: kazoo pings
        connected = threading.Event()
        zk.add_listener(lambda state: connected.set() if state == "CONNECTED" else None)
        proxy.drop_all()  # kazoo resumes its session (it sends no SetWatches; see drive_raw)
        _wait(connected.is_set, 15)
        zk.create("/g/later", b"")  # exists watch fires after the re-arm
        zk.delete("/g/seq-0000000001")
        zk.delete("/g/empty", version=0)
        with contextlib.suppress(NoNodeError):
            zk.delete("/g/missing")
        time.sleep(0.3)
    finally:
        zk.stop()  # closeSession
        zk.close()


def _open_acl() -> list[Any]:
    from kazoo.security import OPEN_ACL_UNSAFE

    return list(OPEN_ACL_UNSAFE)


def _raw_call_special(raw: RawClient, xid: int, op: int, record: Any) -> None:
    """A request with a special xid (setWatches), waiting for its reply."""
    raw.send_raw(encode_request(xid, op, record))
    while True:
        event = raw._next()
        header = getattr(event, "header", None)
        if header is not None and header.xid == xid:
            return


def _resume(port: int, session_id: int, passwd: bytes, last_zxid: int) -> RawClient:
    """A raw client reconnecting to an existing session."""
    client = RawClient.__new__(RawClient)
    client.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    client.framer = ClientFramer()
    client.events = []
    client.unexpected = []
    client._xid = 100
    request = ConnectRequest(0, last_zxid, 10000, session_id, passwd, False)
    client.sock.sendall(encode_connect_request(request))
    event = client._next()
    assert isinstance(event, ConnectedEvent), event
    assert event.response.session_id == session_id, "session not resumed"
    client.session = event.response
    return client


def drive_raw(port: int) -> None:
    raw = RawClient(f"127.0.0.1:{port}")
    other = RawClient(f"127.0.0.1:{port}")
    try:
        assert raw.call(OpCode.CREATE, CreateRequest("/r", None, OPEN, 0)).err == 0
        raw.call(OpCode.CREATE2, CreateRequest("/r/e", b"eph", OPEN, 1))
        raw.call(OpCode.CREATE_CONTAINER, CreateRequest("/r/box", b"", OPEN, 4))
        raw.call(OpCode.CREATE_TTL, CreateTTLRequest("/r/ttl", b"t", OPEN, 5, 60000))
        raw.call(OpCode.CREATE_TTL, CreateTTLRequest("/r/ttl-", b"t", OPEN, 6, 60000))
        raw.call(OpCode.CREATE_TTL, CreateTTLRequest("/r/bad", b"t", OPEN, 0, 60000))  # error
        raw.call(OpCode.CREATE, CreateRequest("/r/box/x", b"x", OPEN, 0))
        raw.call(OpCode.GET_EPHEMERALS, GetEphemeralsRequest("/r"))
        raw.call(OpCode.GET_EPHEMERALS, GetEphemeralsRequest("/nothing"))
        raw.call(OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest("/r"))
        raw.call(OpCode.WHO_AM_I)
        raw.add_auth("digest", b"bob:pw")
        raw.call(OpCode.WHO_AM_I)
        raw.call(OpCode.SYNC, SyncRequest("/r"))
        raw.call(
            OpCode.MULTI_READ,
            MultiRequest(
                [
                    (OpCode.GET_DATA, GetDataRequest("/r/e", False)),
                    (OpCode.GET_CHILDREN, GetChildrenRequest("/r", False)),
                    (OpCode.GET_DATA, GetDataRequest("/r/none", False)),  # error result
                    (OpCode.GET_DATA, GetDataRequest("/r", False)),  # null data
                ]
            ),
        )
        raw.call(
            OpCode.MULTI,
            MultiRequest(
                [
                    (OpCode.CREATE2, CreateRequest("/r/m2", b"", OPEN, 0)),
                    (OpCode.CREATE_CONTAINER, CreateRequest("/r/mc", None, OPEN, 4)),
                    (OpCode.CREATE_TTL, CreateTTLRequest("/r/mt", b"", OPEN, 5, 1000)),
                    (OpCode.CHECK, CheckVersionRequest("/r", 0)),
                ]
            ),
        )
        raw.call(OpCode.MULTI, MultiRequest([]))  # empty multi
        # Persistent watches, their notifications, checkWatches/removeWatches.
        raw.call(OpCode.ADD_WATCH, AddWatchRequest("/r", 1))  # persistent recursive
        raw.call(OpCode.ADD_WATCH, AddWatchRequest("/r/e", 0))  # persistent
        raw.call(OpCode.GET_DATA, GetDataRequest("/r/ttl", True))
        other.call(OpCode.CREATE, CreateRequest("/r/new", b"n", OPEN, 0))
        other.call(OpCode.SET_DATA, SetDataRequest("/r/e", b"e2", -1))
        raw.ping()
        raw.call(OpCode.CHECK_WATCHES, RemoveWatchesRequest("/r/ttl", 2))
        raw.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest("/r/ttl", 3))
        raw.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest("/r/e", 4))
        raw.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest("/r/none", 2))  # no watcher
        _raw_call_special(
            raw,
            -8,
            OpCode.SET_WATCHES2,
            SetWatches2(0, ["/r/e"], ["/r/none"], ["/r"], ["/r/box"], ["/"]),
        )
        raw.ping()
        # Reconnect to the same session (no closeSession) and re-arm watches with SetWatches.
        last_zxid = raw.call(OpCode.EXISTS, ExistsRequest("/r/box", True)).zxid
        session = raw.session
        raw.sock.close()
        raw = _resume(port, session.session_id, session.passwd, last_zxid)
        _raw_call_special(
            raw,
            -8,
            OpCode.SET_WATCHES,
            SetWatches(last_zxid, ["/r/e", "/r/ttl"], ["/r/box", "/r/later"], ["/r"]),
        )
        other.call(OpCode.CREATE, CreateRequest("/r/later", b"", OPEN, 0))
        other.call(OpCode.SET_DATA, SetDataRequest("/r/ttl", None, -1))
        raw.ping()
    finally:
        for client in (other, raw):
            with contextlib.suppress(OSError, ConnectionClosed):
                client.close()


def record(out: pathlib.Path) -> int:
    if not zookeeper_available():
        raise SystemExit("ZooKeeper (Debian package) and java are required")
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "zookeeper"], capture_output=True, text=True
    ).stdout
    ensemble = _Ensemble(1)
    ensemble.start()
    proxy = Proxy(ensemble.client_ports[0])
    try:
        drive_kazoo(proxy.port, proxy)
        drive_raw(proxy.port)
        time.sleep(0.5)
    finally:
        proxy.close()
        ensemble.stop()
    with proxy.lock:
        frames = list(proxy.frames)
    connections = annotate(frames)
    doc = {
        "recorded_by": "python -m tests.wire.record_golden",
        "server": f"Apache ZooKeeper {version} (Debian package), standalone",
        "note": "payloads are hex without the 4-byte length prefix; a reply's op is its request's",
        "connections": connections,
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return sum(len(c["frames"]) for c in connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    count = record(args.out)
    print(f"wrote {count} frames to {args.out}")


if __name__ == "__main__":
    main()
