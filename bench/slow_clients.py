"""Normal API load while 200 slow clients hold connections, beside the same load without
them: p50, p99 and errors of ``GET /api/v1/jobs/{id}/`` and ``POST /api/v1/jobs/``.

Each slow client, from a loopback address of its own, sends a request head promising a
1,000-byte body and then a byte now and then; when the server gives up on it
(``JOBSITE_BODY_IDLE_TIMEOUT`` and ``JOBSITE_BODY_MIN_RATE``) it connects again, so 200 of
them are always held. Before ``jobsite.intake``, four such clients took every thread of a
web process.

    python -m bench.slow_clients                       # 100 requests/s per endpoint, 20 s
    python -m bench.slow_clients --rate 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
from typing import Any

from bench import load, report
from bench.api import jobsite_fixtures, requests_for
from bench.harness import Setup, free_port, machine


async def slow_client(port: int, source: str, key: str, stop: asyncio.Event, held: list) -> None:
    head = (
        f"POST /api/v1/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
        except OSError:
            await asyncio.sleep(0.5)
            continue
        held[0] += 1
        try:
            writer.write(head + b"{")
            while not stop.is_set() and not reader.at_eof():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(4096), timeout=3)
                if reader.at_eof():
                    break
                writer.write(b" ")  # a byte every few seconds: never quite idle
                await writer.drain()
        except OSError:
            pass
        finally:
            held[0] -= 1
            writer.close()


def hold_slow_clients(port: int, key: str, count: int) -> tuple[Any, list[int]]:
    """``count`` slow clients on a thread of their own (their own event loop)."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    held = [0]

    async def main() -> None:
        await asyncio.gather(
            *(slow_client(port, f"127.0.2.{n % 250 + 1}", key, stop, held) for n in range(count))
        )

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()

    def release() -> None:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)

    return release, held


def run(setup: Setup, args: argparse.Namespace) -> list[dict[str, Any]]:
    from bench.harness import checkpoint

    key, job_ids = jobsite_fixtures(1000)
    checkpoint()
    port = free_port()
    setup.jobsite(f"web-{port}", port, workers=2, DB_POOL="1")
    endpoints = requests_for(key, job_ids)
    for make in endpoints.values():
        load.measure(port, 50, 3, make)  # warm every thread's connections
    rows = []
    for condition in ("no slow clients", f"{args.slow} slow clients held"):
        release = None
        if condition != "no slow clients":
            release, held = hold_slow_clients(port, key, args.slow)
            while held[0] < args.slow * 0.95:
                threading.Event().wait(0.2)
        for endpoint, make in endpoints.items():
            outcome = load.measure(port, args.rate, args.seconds, make)
            row = {"condition": condition, "endpoint": endpoint, **outcome.summary()}
            if release is not None:
                row["slow held"] = held[0]
            rows.append(row)
            print(row, flush=True)
        if release is not None:
            release()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--embedded", action="store_true")
    args = parser.parse_args()
    setup = Setup(embedded=args.embedded)
    setup.env["JOBSITE_THROTTLE_RATE"] = "100000000/min"
    try:
        setup.prepare()
        print(f"machine: {machine()}\nsetup:   {setup.label}\n", flush=True)
        rows = run(setup, args)
        report.append(
            f"7. API load while {args.slow} slow clients hold connections",
            "python -m bench.slow_clients",
            f"{setup.label}; `python -m jobsite.serve --workers 2`; {args.rate} requests/s per "
            f"endpoint for {args.seconds:.0f} s, without and then with {args.slow} clients each "
            "holding a request whose body never quite arrives (reconnecting when refused).\n\n"
            + report.table(
                rows,
                ["condition", "endpoint", "rate/s", "sent", "p50 ms", "p99 ms", "errors"],
            ),
        )
        print(json.dumps(rows))
    finally:
        setup.stop()


if __name__ == "__main__":
    main()
