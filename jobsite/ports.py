"""Knowing when a server we started is ready: its TCP port accepts connections.

A process exists well before it listens, so the launchers (the embedded default, the
benchmark harness, the test run's Valkey) poll its port before handing it to clients.
The loop lives here once so they all poll the same way; each caller decides what a
server that never comes up means for it (exit, raise, or carry on quietly).
"""

from __future__ import annotations

import socket
import time


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port`` right now.

    ``timeout`` bounds a single attempt so that a host which drops packets (rather than
    refusing) cannot hold a polling loop past its own deadline.
    """
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float,
    *,
    interval: float = 0.05,
    attempt_timeout: float = 0.2,
) -> bool:
    """Poll ``host:port`` until it accepts a connection or ``timeout`` seconds have passed.

    Returns False rather than raising: the embedded default only skips its banner when
    the web server is late, while the harnesses turn it into their own error.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port, attempt_timeout):
            return True
        time.sleep(interval)
    return False
