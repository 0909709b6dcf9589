"""The bounds on one outbound request: a deadline for all of it and a cap on what it reads.

A user-supplied URL may point at a server that trickles bytes forever, redirects slowly,
or sends a small compressed body that expands to gigabytes. These pieces hold every fetch
to its time and size budget however the server behaves; the client wires them in.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import httpx

from jobs.outbound.errors import FetchError

# --- the time budget ----------------------------------------------------------------------


class Budget:
    """The deadline of one fetch, shared by all its hops."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.fired = False  # set by a watchdog that cut a connection at the deadline
        self._watchdogs: set[Watchdog] = set()  # the hops in flight, for ``cut``

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def cut(self) -> None:
        """End the budget now and shut the sockets of the hops in flight.

        For a caller that stops before the deadline while a hop may still be waiting on its
        server (the render proxy, when the page is done but a long poll is not): without
        this, that thread would sit in a read until the deadline.
        """
        self.deadline = time.monotonic()
        for watchdog in list(self._watchdogs):
            watchdog.fire()

    @property
    def expired(self) -> bool:
        return self.fired or self.remaining() <= 0

    def error(self, shown: str) -> FetchError:
        return FetchError(
            f"Fetching {shown} took longer than {self.seconds:g} seconds",
            code="timeout",
            retryable=True,
        )


class Watchdog:
    """Shuts the hop's socket down at the deadline.

    httpx timeouts bound each read, not the sum of them: a server that trickles bytes or
    stalls just before the deadline would otherwise overrun it by up to a whole read timeout.
    The socket is captured through httpcore's ``trace`` extension and duplicated, so the
    duplicate still refers to it after TLS wraps (and detaches) the original.
    """

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        budget._watchdogs.add(self)
        self._timer = threading.Timer(max(0.0, budget.remaining()), self.fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock.dup())
            if self._budget.fired:
                self._shutdown()

    def fire(self) -> None:
        """The deadline (or ``Budget.cut``): shut the hop's sockets down."""
        with self._lock:
            self._budget.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        for sock in self._sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()
        self._budget._watchdogs.discard(self)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


# --- the body -----------------------------------------------------------------------------


class _Decoder:
    """Undoes a Content-Encoding the server sent although we asked for identity, never
    producing more than ``limit`` bytes per call (no decompression bomb in memory)."""

    def __init__(self, encoding: str, limit: int, shown: str) -> None:
        self.shown = shown
        self.limit = limit
        self.inflater: Any = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, detected
        elif encoding not in ("", "identity"):
            raise FetchError(
                f"{shown} was sent with Content-Encoding {encoding!r}, which is not supported",
                code="bad_response",
            )

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self.inflater is None:
            yield data
            return
        try:
            yield self.inflater.decompress(data, self.limit)
            while self.inflater.unconsumed_tail:
                yield self.inflater.decompress(self.inflater.unconsumed_tail, self.limit)
        except zlib.error:
            raise FetchError(
                f"{self.shown} could not be decompressed", code="bad_response"
            ) from None

    def flush(self) -> bytes:
        return self.inflater.flush() if self.inflater is not None else b""


def read_body(
    response: httpx.Response, sink: IO[bytes], *, max_bytes: int, budget: Budget, shown: str
) -> int:
    """Stream the body into ``sink``, refusing it as soon as it passes ``max_bytes``."""
    too_large = FetchError(f"{shown} is larger than {max_bytes} bytes", code="too_large")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    length = response.headers.get("content-length", "")
    if encoding in ("", "identity") and length.isdigit() and int(length) > max_bytes:
        raise too_large
    decoder = _Decoder(encoding, max_bytes + 1, shown)
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        sink.write(chunk)

    for raw in response.iter_raw():
        for chunk in decoder.decode(raw):
            take(chunk)
        if budget.expired:
            raise budget.error(shown)
    # The watchdog's shutdown reads as a clean end of a body delimited by the connection
    # closing: a body that "ended" after the deadline is a cut one, not a complete one.
    if budget.expired:
        raise budget.error(shown)
    take(decoder.flush())
    return size


@contextmanager
def open_sink(dest: Path | None) -> Iterator[IO[bytes]]:
    """Memory, or a partial file beside ``dest`` that replaces it only on success."""
    if dest is None:
        yield io.BytesIO()
        return
    partial = dest.with_name(dest.name + ".part")
    try:
        with partial.open("wb") as handle:
            yield handle
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
