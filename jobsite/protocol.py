"""uvicorn's HTTP protocol with the limits a server facing the internet needs.

uvicorn (0.55, httptools) reads request heads with no deadline and no size cap, and
accepts connections until the process runs out of file descriptors: four clients sending
a head one byte at a time, 20,000 idle sockets, or one 300 MB header were enough to stop
the API for everyone. Here, before any application code (and any thread) sees a request:

- a connection beyond ``JOBSITE_MAX_CONNECTIONS`` for the process, or beyond
  ``JOBSITE_MAX_CONNECTIONS_PER_CLIENT`` for one client address (trusted proxies
  excepted), is answered ``503`` and closed at once: one write, no parsing;
- a request head (request line and headers) must arrive within ``JOBSITE_HEADER_TIMEOUT``
  seconds of the connection opening or of the previous response (``408``, closed);
- a request head larger than ``JOBSITE_MAX_HEADER_BYTES`` is ``431`` and closed, having
  buffered no more than that (plus one read).

Bodies are the ASGI app's to read: ``jobsite.intake`` reads them in full, with deadlines
and size caps, in the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("jobsite.server")

# File descriptors kept back from the connection cap: database and Redis connections,
# uploads spooled to disk, log files.
_RESERVED_FDS = 512


@dataclass(frozen=True)
class Limits:
    max_connections: int
    max_connections_per_client: int
    header_timeout: float
    max_header_bytes: int
    trusted: frozenset[str]  # "*": every peer is a proxy (one that limits per client)

    @classmethod
    def from_settings(cls) -> Limits:
        trusted = {
            address.strip()
            for address in settings.FORWARDED_ALLOW_IPS.split(",")
            if address.strip()
        }
        return cls(
            max_connections=settings.JOBSITE_MAX_CONNECTIONS or default_max_connections(),
            max_connections_per_client=settings.JOBSITE_MAX_CONNECTIONS_PER_CLIENT,
            header_timeout=settings.JOBSITE_HEADER_TIMEOUT,
            max_header_bytes=settings.JOBSITE_MAX_HEADER_BYTES,
            trusted=frozenset(trusted),
        )


def raise_open_files_limit() -> int:
    """Lift this process's soft limit on open files to the hard one; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(64, soft - _RESERVED_FDS)


def _refusal(status: int, reason: bytes, message: str) -> bytes:
    body = f'{{"error": {{"code": "{reason.decode().lower().replace(" ", "_")}", '
    body += f'"message": "{message}"}}}}'
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, reason, len(body), body.encode())
    )


REFUSED_BUSY = _refusal(503, b"Service Unavailable", "Too many connections; try again later")
REFUSED_SLOW = _refusal(408, b"Request Timeout", "The request head took too long to arrive")
REFUSED_LARGE = _refusal(
    431, b"Request Header Fields Too Large", "The request line and headers are too large"
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection, with the limits above."""

    limits: ClassVar[Limits | None] = None
    per_client: ClassVar[Counter[str]] = Counter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if GuardedHttpToolsProtocol.limits is None:
            GuardedHttpToolsProtocol.limits = Limits.from_settings()
        self._limits = GuardedHttpToolsProtocol.limits
        self._counted: str | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._awaiting_head = True

    # --- connections ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self._limits
        host = self.client[0] if self.client else ""
        if len(self.connections) > limits.max_connections:
            self._refuse(REFUSED_BUSY, "connections for this process", limits.max_connections)
            return
        if host and host not in limits.trusted and "*" not in limits.trusted:
            if self.per_client[host] >= limits.max_connections_per_client:
                self._refuse(
                    REFUSED_BUSY, f"connections from {host}", limits.max_connections_per_client
                )
                return
            self.per_client[host] += 1
            self._counted = host
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        if self._counted is not None:
            self.per_client[self._counted] -= 1
            if self.per_client[self._counted] <= 0:
                del self.per_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def _refuse(self, response: bytes, what: str, limit: int) -> None:
        log.warning("Refused a connection: over the limit of %s (%d)", what, limit)
        self._awaiting_head = False
        self.transport.write(response)
        self.transport.close()

    # --- the request head -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        if self._awaiting_head and not self.transport.is_closing():
            # What the parser has not turned into a complete head yet: all of it counts.
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes:
                self._close_with(REFUSED_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._awaiting_head:  # a pipelined request: its head starts now
            self._awaiting_head = True
            self._head_bytes = 0
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete  # no pipelined request
        if idle and not self.transport.is_closing() and not self._awaiting_head:
            # Keep-alive: the next head has its own deadline (uvicorn's keep-alive timeout
            # also closes a connection that sends nothing at all).
            self._awaiting_head = True
            self._head_bytes = 0
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_late)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._awaiting_head and not self.transport.is_closing():
            if self._head_bytes:  # a client that sent part of a head: tell it why
                self._close_with(REFUSED_SLOW)
            else:  # an idle connection: just close it
                self.transport.close()

    def _close_with(self, response: bytes) -> None:
        self._awaiting_head = False
        self._disarm_head_timer()
        self.transport.write(response)
        self.transport.close()
        self.parser = None  # type: ignore[assignment]  # nothing more is parsed
