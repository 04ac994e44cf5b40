"""`kraft zk` usability, run as real processes against one shared quorum: one-line errors
naming the node, exit codes (2 usage, 1 runtime), client-side path checks, fast failure when
nothing answers, readable help, the shell's help, watch's first line, and `quorum status`
JSON keys matching its table."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from controller.client.errors import REASONS, ConnectionLossError, describe, error_for
from controller.localquorum import LocalQuorum, free_ports
from controller.zk.constants import Err
from controller.zkcli import COMMANDS

pytestmark = pytest.mark.timeout(120)


def kraft(
    *args: str, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of stderr (asserting there is exactly one, and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalQuorum]:
    with LocalQuorum(tmp_path_factory.mktemp("zk-ux"), fsync=False) as q:
        q.wait_for_leader()
        yield q


@pytest.fixture(scope="module")
def b(quorum: LocalQuorum) -> list[str]:
    return ["--bootstrap-server", quorum.connect_string]


@pytest.fixture(scope="module")
def refused() -> list[str]:
    """A bootstrap string where nothing listens (connection refused)."""
    return ["--bootstrap-server", f"127.0.0.1:{free_ports(1)[0]}"]


# ---------------------------------------------------------------------- 1: error wording


@pytest.fixture(scope="module")
def tree(b: list[str]) -> None:
    """/ux with a child, and /ux/locked readable by anyone but writable by no one."""
    for args in (
        ["create", "/ux", "x"],
        ["create", "/ux/child", "y"],
        ["create", "/ux/locked", "z", "world:anyone:r"],
    ):
        result = kraft("zk", *args, *b)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["get", "/ux-nope"], "error: /ux-nope: no such node"),
        (["stat", "/ux-nope"], "error: /ux-nope: no such node"),
        (["ls", "/ux-nope"], "error: /ux-nope: no such node"),
        (["set", "/ux-nope", "v"], "error: /ux-nope: no such node"),
        (["getacl", "/ux-nope"], "error: /ux-nope: no such node"),
        (["create", "/ux", "x"], "error: /ux: node already exists"),
        (
            ["create", "/ux-missing/child"],
            "error: /ux-missing/child: parent node /ux-missing does not exist",
        ),
        (["delete", "/ux"], "error: /ux: node has children (delete -r deletes the subtree)"),
        (["set", "/ux", "v", "7"], "error: /ux: node is not at version 7"),
        (["delete", "/ux/child", "7"], "error: /ux/child: node is not at version 7"),
        (
            ["set", "/ux/locked", "v"],
            "error: /ux/locked: not authorized (the node's ACL does not allow this)",
        ),
        (["create", "/ux-acl", "x", "auth::cdrwa"], "error: /ux-acl: invalid ACL"),
        (["ls", "/", "--auth", "nosuch:cred"], "error: --auth nosuch: authentication failed"),
    ],
)
def test_errors_are_one_line_naming_the_node(
    tree: None, b: list[str], args: list[str], expected: str
) -> None:
    result = kraft("zk", *args, *b)
    assert result.returncode == 1
    assert error_line(result) == expected
    assert result.stdout == ""


def test_every_error_code_has_a_reason_and_names_its_subject() -> None:
    for code in Err:
        if code == Err.OK:
            continue
        assert code in REASONS
        line = describe(error_for(code), "/p")
        assert line.startswith("/p: ") and "\n" not in line
        assert "Error (" not in line  # not the bare class name and code
    assert describe(ConnectionLossError("not connected"), "/p") == (
        "/p: connection to the controller lost (not connected)"
    )


def test_shell_errors_keep_the_shell_going(tree: None, b: list[str]) -> None:
    script = (
        "create -e /ux-eph x\ncreate /ux-eph/c y\nfrobnicate\nget /ux-nope\nget /ux-eph\nquit\n"
    )
    result = kraft("zk", "shell", *b, stdin=script)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "error: /ux-eph/c: parent node /ux-eph is ephemeral and cannot have children",
        "error: unknown command 'frobnicate' (type help for the list)",
        "error: /ux-nope: no such node",
    ]
    assert result.stdout.splitlines() == ["Created /ux-eph", "x"]  # went on after errors


# ---------------------------------------------------------------------- 2: paths


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["create", "relative/path", "x"], "error: relative/path: path must start with /"),
        (["get", "/a/"], "error: /a/: path must not end with /"),
        (["ls", "/a//b"], "error: /a//b: empty node name"),
        (["set", "/a/../b", "x"], "error: /a/../b: relative paths are not allowed"),
        (["delete", "nope"], "error: nope: path must start with /"),
        (["watch", "/a\x01"], "error: /a\x01: invalid character U+0001"),
    ],
)
def test_invalid_paths_are_usage_errors_found_before_connecting(
    refused: list[str], args: list[str], expected: str
) -> None:
    # Nothing listens: the path is checked first (exit 2, not "no controller reachable").
    result = kraft("zk", *args, *refused)
    assert result.returncode == 2
    assert error_line(result) == expected


def test_sequential_create_may_end_with_a_slash(tree: None, b: list[str]) -> None:
    result = kraft("zk", "create", "-s", "/ux/", *b)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Created /ux/00")


# ---------------------------------------------------------------------- 3: unreachable


def test_refused_everywhere_fails_fast_with_quorum_status_wording(refused: list[str]) -> None:
    start = time.monotonic()
    zk = kraft("zk", "get", "/x", *refused)
    elapsed = time.monotonic() - start
    assert zk.returncode == 1
    assert elapsed < 3.0, elapsed
    status = kraft("quorum", "status", *refused)
    assert status.returncode == 1
    line = error_line(zk)
    assert line.startswith("error: no controller reachable (")
    assert line == error_line(status)


def test_server_that_never_answers_gives_up_within_seconds() -> None:
    # Accepts TCP (the kernel completes the handshake) but never speaks ZooKeeper.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        start = time.monotonic()
        result = kraft("zk", "ls", "/", "-b", f"127.0.0.1:{port}")
        elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert elapsed < 9.0, elapsed
    assert error_line(result).startswith(f"error: no controller reachable (127.0.0.1:{port}")


def test_a_server_that_is_not_zookeeper_fails_with_one_line() -> None:
    # Answers every connection like an HTTP server would.
    with socket.socket() as http:
        http.bind(("127.0.0.1", 0))
        http.listen(8)
        http.settimeout(0.2)
        port = http.getsockname()[1]
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = http.accept()
                except TimeoutError:
                    continue
                with conn, contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                    time.sleep(0.2)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            result = kraft("zk", "ls", "/", "-b", f"127.0.0.1:{port}")
        finally:
            stop.set()
            thread.join(5)
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith(f"error: no controller reachable (127.0.0.1:{port}: connected, but")


def test_one_dead_server_in_the_list_does_not_matter(quorum: LocalQuorum) -> None:
    bootstrap = f"127.0.0.1:{free_ports(1)[0]},{quorum.connect_string}"
    result = kraft("zk", "ls", "/", "-b", bootstrap)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------- 4: usage errors


@pytest.mark.parametrize(
    "args",
    [
        ["zk", "get", "/x", "--no-such-flag"],
        ["zk", "--no-such-flag"],
        ["zk", "create", "-x", "/x"],
        ["zk", "frobnicate"],
        ["zk", "get"],
        ["zk", "set", "/x"],
        ["zk", "setacl", "/x"],
        ["zk", "get", "/x", "/y"],
        ["zk", "set", "/x", "data", "not-a-version"],
        ["zk", "watch", "/x", "0"],
        ["zk", "setacl", "/x", "world:anyone"],
        ["zk", "setacl", "/x", "world:anyone:rwz"],
        ["zk", "create", "/x", "data", "nonsense"],
        ["zk", "create", "-c", "-e", "/x", ""],
        ["zk", "create", "-c", "-s", "/x", ""],
        ["zk", "get", "/x", "--auth", "no-colon"],
        ["zk", "get", "/x", "--bootstrap-server", "nonsense"],
        ["zk", "shell", "--bootstrap-server", "nonsense"],
        ["quorum", "status", "--bootstrap-server", "nonsense"],
        ["quorum", "status", "--no-such-flag"],
        ["quorum", "start", "--controllers", "0"],
    ],
)
def test_usage_errors_exit_2_with_one_line(refused: list[str], args: list[str]) -> None:
    has_server = any(a == "--bootstrap-server" for a in args) or args[0] != "zk"
    result = kraft(*args, *([] if has_server else refused))
    assert result.returncode == 2, result
    error_line(result)


def test_usage_error_names_the_usage(refused: list[str]) -> None:
    result = kraft("zk", "create", *refused)
    assert error_line(result) == (
        "error: create: missing PATH (usage: kraft zk create [-e] [-s] [-c] PATH [DATA] [ACL])"
    )


# ---------------------------------------------------------------------- 5: help


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["zk", "--help"],
        ["zk", "setacl", "--help"],
        ["zk", "create", "--help"],
        ["zk", "shell", "--help"],
        ["quorum", "--help"],
        ["quorum", "status", "--help"],
    ],
)
def test_help_reads_cleanly(args: list[str]) -> None:
    result = kraft(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.isascii(), result.stdout  # no emoji, no box drawing
    assert "<bool>" not in result.stdout and "<list" not in result.stdout
    assert result.stdout.startswith("Usage: kraft")


def test_subcommand_help_shows_its_syntax() -> None:
    setacl = kraft("zk", "setacl", "--help").stdout
    assert "Usage: kraft zk setacl [OPTIONS] PATH ACL" in setacl
    assert "scheme:id:perms" in setacl
    create = kraft("zk", "create", "--help").stdout
    assert "Usage: kraft zk create [OPTIONS] [-e] [-s] [-c] PATH [DATA] [ACL]" in create


# ---------------------------------------------------------------------- 6: shell help


def test_shell_help_lists_every_command(b: list[str]) -> None:
    result = kraft("zk", "shell", *b, stdin="help\n?\nquit\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for name, spec in COMMANDS.items():
        lines = [line for line in result.stdout.splitlines() if line.split()[:1] == [name]]
        assert len(lines) == 2, (name, result.stdout)  # once for help, once for ?
        assert spec.summary in lines[0]
    assert "quit" in result.stdout and "help" in result.stdout


# ---------------------------------------------------------------------- 7: watch


def read_line(stream: object, deadline: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
    buf = b""
    fd = stream.fileno()  # type: ignore[attr-defined]
    while not buf.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no line in time (got {buf!r})"
        if sel.select(remaining):
            chunk = os.read(fd, 1)
            if not chunk:
                break
            buf += chunk
    return buf.decode()


@pytest.mark.parametrize("as_json", [False, True])
def test_watch_says_what_it_watches_first(tree: None, b: list[str], as_json: bool) -> None:
    path = f"/ux-w{int(as_json)}"
    args = [sys.executable, "-m", "controller", "zk", "watch", path, "1", *b]
    args += ["--json"] if as_json else []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            first = read_line(proc.stderr, time.monotonic() + 15)
            assert first == f"watching {path} and below, until 1 event (Ctrl-C to stop)\n"
            assert kraft("zk", "create", path, "v", *b).returncode == 0
            out, err = proc.communicate(timeout=15)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert err == b""
    if as_json:
        assert [json.loads(line) for line in out.splitlines()] == [
            {"type": "NODE_CREATED", "path": path}
        ]
    else:
        assert out.decode() == f"NODE_CREATED {path}\n"


def test_watch_stops_on_ctrl_c_without_traceback(b: list[str]) -> None:
    args = [sys.executable, "-m", "controller", "zk", "watch", "/ux-ctrl-c", *b]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            first = read_line(proc.stderr, time.monotonic() + 15)
            assert first == "watching /ux-ctrl-c and below (Ctrl-C to stop)\n"
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=15)
        finally:
            proc.kill()
    assert proc.returncode == 130
    assert b"Traceback" not in err


# ---------------------------------------------------------------------- 8: quorum status


def camel(key: str) -> str:
    return "".join(word.capitalize() for word in key.split("_"))


def test_status_json_keys_match_the_table_columns(b: list[str]) -> None:
    result = kraft("quorum", "status", *b, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "leader_id", "leader_epoch", "high_watermark", "answered_by", "voters", "observers",
    }  # fmt: skip
    member_keys = [
        "node_id", "role", "client_address", "raft_address", "log_end_offset", "lag",
        "last_contact_ms", "sessions", "znodes", "watches", "connections",
    ]  # fmt: skip
    assert [list(v) for v in data["voters"]] == [member_keys] * 3
    assert [v["node_id"] for v in data["voters"]] == [1, 2, 3]
    assert sum(v["role"] == "leader" for v in data["voters"]) == 1
    table = kraft("quorum", "status", *b)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    for key in ("leader_id", "leader_epoch", "high_watermark", "answered_by"):
        assert f"{camel(key)}: " in lines[0]
    header = next(line for line in lines if "NodeId" in line)
    columns = [c.strip() for c in header.strip("┃│ ").replace("┃", "│").split("│")]
    assert columns == [camel(k) for k in member_keys]


def test_data_that_is_not_utf8_is_stored_as_typed(b: list[str], quorum: LocalQuorum) -> None:
    """An argument with bytes that are not UTF-8 (e.g. `"$(printf '\\xff\\xfe')"`) is
    stored byte for byte, not a traceback."""
    raw = os.fsdecode(b"\xff\xfe-data")  # what Python gives a program for such an argument
    result = subprocess.run(
        [sys.executable, "-m", "controller", "zk", "create", *b, "/not-utf8", raw],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    zk = KazooClient(hosts=quorum.connect_string)
    zk.start(timeout=10)
    try:
        assert zk.get("/not-utf8")[0] == b"\xff\xfe-data"
    finally:
        zk.stop()
        zk.close()
