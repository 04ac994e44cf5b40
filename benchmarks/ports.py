"""Free loopback ports chosen by the OS, for benchmark clusters."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free right now (bound together so they are distinct)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
