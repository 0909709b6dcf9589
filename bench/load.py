"""An open-loop, constant-rate HTTP/1.1 load generator (keep-alive, asyncio, raw sockets).

Request ``i`` is due at ``start + i / rate`` whatever happened to the ones before it, and
its latency counts from that moment, so a slow server shows as latency instead of
silently lowering the offered rate (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.harness import percentile


@dataclass
class Outcome:
    rate: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, float | int]:
        return {
            "rate/s": self.rate,
            "sent": len(self.latencies) + sum(self.errors.values()),
            "p50 ms": round(1000 * percentile(self.latencies, 50), 1),
            "p99 ms": round(1000 * percentile(self.latencies, 99), 1),
            "max ms": round(1000 * max(self.latencies, default=float("nan")), 1),
            "errors": sum(self.errors.values()),
        }


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> tuple[int, bool]:
        """Send one request; (status, whether the connection can be reused)."""
        self.writer.write(raw)
        status_line = await self.reader.readline()
        parts = status_line.split()
        if len(parts) < 2:
            raise ConnectionError(f"bad status line {status_line[:40]!r}")
        length, chunked, reusable = 0, False, True
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and value == b"close":
                reusable = False
        if chunked:
            while size := int((await self.reader.readline()).strip() or b"0", 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        elif length:
            await self.reader.readexactly(length)
        return int(parts[1]), reusable


def build(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}{length}\r\n".encode() + body


async def run(
    port: int, rate: int, seconds: float, make_request: Callable[[int], bytes], pool: int = 512
) -> Outcome:
    outcome = Outcome(rate, seconds)
    idle: list[Connection] = []
    opened = 0
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1

    async def one(i: int) -> None:
        nonlocal opened
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        conn = idle.pop() if idle else None
        try:
            if conn is not None:
                try:
                    status, reusable = await asyncio.wait_for(conn.request(make_request(i)), 30)
                except (ConnectionError, OSError):  # the server closed an idle keep-alive
                    conn.writer.close()
                    opened -= 1
                    conn = None
            if conn is None:
                if opened >= pool:
                    raise ConnectionError("connection pool exhausted")
                opened += 1
                conn = Connection(*await asyncio.open_connection("127.0.0.1", port))
                status, reusable = await asyncio.wait_for(conn.request(make_request(i)), 30)
        except (TimeoutError, OSError, ConnectionError, ValueError) as exc:
            outcome.errors[type(exc).__name__] = outcome.errors.get(type(exc).__name__, 0) + 1
            if conn is not None:
                conn.writer.close()
                opened -= 1
            return
        if status < 400:
            outcome.latencies.append(loop.time() - due)
        else:
            outcome.errors[str(status)] = outcome.errors.get(str(status), 0) + 1
        if reusable:
            idle.append(conn)
        else:
            conn.writer.close()
            opened -= 1

    await asyncio.gather(*(one(i) for i in range(total)))
    for conn in idle:
        conn.writer.close()
    return outcome


def measure(port: int, rate: int, seconds: float, make_request: Callable[[int], bytes]) -> Outcome:
    started = time.monotonic()
    outcome = asyncio.run(run(port, rate, seconds, make_request))
    outcome.seconds = time.monotonic() - started
    return outcome
