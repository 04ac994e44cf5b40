"""Demo broker and `kraft` processes for the real-process tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

SESSION_TIMEOUT_MS = 4000
REGISTERED = re.compile(r"registered as PLAINTEXT://([\d.]+):(\d+) with epoch (\d+)")


def kraft(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kraft_json(*args: str) -> Any:
    result = kraft(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class BrokerProc:
    """One `python -m broker_demo` (or `kraft broker run`) process; output collected."""

    def __init__(self, broker_id: int, bootstrap: str, *extra: str, via_kraft: bool = False):
        self.broker_id = broker_id
        head = ["controller", "broker", "run"] if via_kraft else ["broker_demo"]
        cmd = [
            sys.executable, "-m", *head, "--id", str(broker_id), "-b", bootstrap,
            "--session-timeout-ms", str(SESSION_TIMEOUT_MS), *extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.port = 0
        self.epoch = 0

    @staticmethod
    def _pump(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.out):
                if m := regex.search(line):
                    return m
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the pumps finish
                for line in list(self.out):
                    if m := regex.search(line):
                        return m
                break
            time.sleep(0.05)
        raise AssertionError(
            f"broker {self.broker_id}: no line matching {pattern!r}\nstdout:\n"
            + "\n".join(self.out)
            + "\nstderr:\n"
            + "\n".join(self.err)
        )

    def wait_registered(self, timeout: float = 20.0) -> int:
        m = self.wait_for(REGISTERED.pattern, timeout)
        self.port, self.epoch = int(m.group(2)), int(m.group(3))
        return self.epoch

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def ask_status(port: int, request: bytes = b'{"request":"status"}\n') -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


def wait_until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
