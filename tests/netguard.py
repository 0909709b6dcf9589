"""The network guard for tests of outbound requests: no connection off loopback, DNS from a
table.

Import ``net`` into a test module (``from tests.netguard import Net, net``) and it is an
autouse fixture there: every connection this process tries is recorded and refused unless
it is to loopback, and names resolve only from ``net.dns`` (numeric hosts aside), so a
regression that would reach a private address or the resolver shows up as a recorded
attempt, not as traffic.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class Net:
    """What the code under test tried: connections (all of them) and DNS look-ups."""

    dns: dict[str, list[str]] = field(default_factory=dict)  # name -> answers ("ip,ip")
    connects: list[tuple[Any, ...]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)

    @property
    def outside(self) -> list[tuple[Any, ...]]:
        return [address for address in self.connects if not _is_loopback(address)]

    def connects_to(self, port: int) -> list[tuple[Any, ...]]:
        return [address for address in self.connects if address[1] == port]


def _is_loopback(address: Any) -> bool:
    try:
        return ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def guarded_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[Net]:
    """Refuse (and record) connections off loopback; answer names from ``net.dns`` only."""
    state = Net()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def guard(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            state.connects.append(tuple(address))
            if not _is_loopback(address):
                raise OSError(f"test guard: no connections off loopback ({address!r})")

    def connect(sock: socket.socket, address: Any) -> None:
        guard(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        guard(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ):
        name = host.decode() if isinstance(host, bytes) else str(host)
        state.lookups.append(name)
        if name in state.dns:
            answers = state.dns[name]  # one answer per call, the last one repeated
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, int(port), 0, 0))
                if ":" in ip
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port)))
                for ip in answer.split(",")
            ]
        # Numeric hosts only: a real name would send a query to the resolver.
        return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield state


@pytest.fixture(autouse=True)
def net(monkeypatch: pytest.MonkeyPatch) -> Iterator[Net]:
    """The guard for one test (autouse where imported)."""
    with guarded_network(monkeypatch) as state:
        yield state
