"""A free local port for a component that may be restarted on it (tests, benchmarks, the
embedded PostgreSQL).

Port 0 asks the kernel for one from its ephemeral range, the same range it hands out as
the local port of every outgoing connection. Once the component dies, any connection on the
machine may take that port, and the component cannot come back on it ("port in use"). So
this picks below the ephemeral range, where the kernel never picks by itself, and checks
that nothing listens there.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

FLOOR = 20_000  # above the registered services most machines run
_given: set[int] = set()  # never the same port twice in one process


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing is bound to now, outside the ephemeral range when it can."""
    top = _ephemeral_start()
    candidates = range(FLOOR, top) if top - FLOOR >= 1_000 else range(0)
    for _ in range(200):
        port = random.choice(candidates) if candidates else 0
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            port = sock.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port
    raise OSError(f"no free port on {host} between {FLOOR} and {top}")
