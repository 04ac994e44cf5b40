"""HTTP helpers for the admin-server tests (stdlib only: the tests are synchronous)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes, str]:
    """(status, body, content type), HTTP errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def get_json(url: str) -> Any:
    status, body, _ = get(url)
    assert status == 200, (url, status, body)
    return json.loads(body)


def metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`: (sample name, sorted labels) -> value."""
    status, body, ctype = get(base + "metrics")
    assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(base: str, name: str, **labels: str) -> float:
    return metrics(base)[(name, tuple(sorted(labels.items())))]


def four_letter(port: int, word: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(word.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode()


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, KeyError) as exc:  # a controller restarting, a metric not there yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def read_events(url: str, stop: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> list:
    """Read `/api/events` until `stop(event)` is true for an event; return the events read."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with urllib.request.urlopen(url, timeout=timeout) as response:
        while time.monotonic() < deadline:
            line = response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                event = json.loads(line[6:])
                if "seq" in event:
                    events.append(event)
                    if stop(event):
                        return events
    raise AssertionError(f"no matching event; got {events}")
