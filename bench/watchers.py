"""Live updates at scale: SSE streams and long-polls held by ONE web process while jobs
change state, beside a bare ASGI fan-out (the floor) under the same load; then the delay
from a real worker's progress() call to the SSE event at a client.

    python -m bench.watchers                      # 10,000 streams + 1,000 polls, PG + Redis
    python -m bench.watchers --streams 2000 --polls 200 --seconds 10 --embedded

Prints memory per watcher, threads, server CPU, delivery p50/p99, and lost events.
``BENCH_DEBUG=1`` also prints the delays second by second (to find a stall).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import json
import os
import time
from datetime import datetime
from typing import Any

import psutil

from bench import report
from bench.harness import Setup, free_port, machine, percentile, raise_fd_limit

TERMINAL = (b'"completed"', b'"failed"', b'"cancelled"')


class Tally:
    def __init__(self) -> None:
        self.delays: list[float] = []
        self.times: list[float] = []
        self.final_delays: list[float] = []
        self.events = 0
        self.errors: list[str] = []
        self.finished = 0


def _delay(line: bytes, now: float) -> float | None:
    """Seconds since the event's timestamp, read without parsing the whole JSON."""
    at = line.find(b'"timestamp":')
    if at < 0:
        return None
    start = line.index(b'"', at + 12) + 1
    end = line.index(b'"', start)
    return now - datetime.fromisoformat(line[start:end].decode()).timestamp()


async def _request(port: int, path: str, headers: dict[str, str]):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{head}\r\n".encode())
    status = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    return reader, writer, status


async def stream(
    port: int, path: str, headers: dict[str, str], ready: asyncio.Event, tally: Tally
) -> None:
    try:
        reader, writer, status = await _request(port, path, headers)
        if b" 200 " not in status:
            tally.errors.append(status.decode().strip())
            ready.set()
            return
        first = True
        while line := await reader.readline():
            if not line.startswith(b"data: "):
                continue
            now = time.time()
            if first:
                first = False
                ready.set()
                continue
            tally.events += 1
            delay = _delay(line, now)
            if any(word in line for word in TERMINAL):
                tally.finished += 1
                if delay is not None:
                    tally.final_delays.append(delay)
                break
            if delay is not None:
                tally.delays.append(delay)
                tally.times.append(now)
        writer.close()
    except (OSError, ValueError) as exc:
        tally.errors.append(repr(exc))
        ready.set()


async def poll(port: int, path: str, headers: dict[str, str], tally: Tally) -> None:
    try:
        reader, writer, status = await _request(port, path, headers)
        await reader.read()
        if b" 200 " in status:
            tally.finished += 1
        else:
            tally.errors.append(status.decode().strip())
        writer.close()
    except OSError as exc:
        tally.errors.append(repr(exc))


def publisher(job_ids: list[str], rate: int, seconds: float) -> int:
    """Progress changes at ``rate`` per second, round-robin over the jobs."""
    from jobs.live.notify import flush, notify

    total = int(rate * seconds)
    started = time.monotonic()
    for i in range(total):
        due = started + i / rate
        if (pause := due - time.monotonic()) > 0:
            time.sleep(pause)
        notify(job_ids[i % len(job_ids)], status="running", progress=round(100 * i / total, 2))
    flush()  # a pool process exits without atexit handlers
    return total


async def hold(
    label: str,
    port: int,
    pid: int,
    stream_path: str,
    poll_path: str,
    job_ids: list[str],
    headers: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    from jobs.live.notify import notify

    server = psutil.Process(pid)
    tally, polls = Tally(), Tally()
    tasks, readies = [], []
    gate = asyncio.Semaphore(500)  # connect in waves: the listen backlog is finite

    async def opened(path: str) -> None:
        ready = asyncio.Event()
        readies.append(ready)
        async with gate:
            task = asyncio.create_task(stream(port, path, headers, ready, tally))
            tasks.append(task)
            await asyncio.wait_for(ready.wait(), 120)

    # The first 100 warm the server up (imports, the hub, the thread pool); memory and
    # threads per watcher are counted from there.
    warmup = min(100, args.streams)
    paths = [stream_path.format(job_ids[i % len(job_ids)]) for i in range(args.streams)]
    await asyncio.gather(*(opened(path) for path in paths[:warmup]))
    await asyncio.sleep(0.5)
    rss0, threads0 = server.memory_info().rss, server.num_threads()
    started = time.monotonic()
    await asyncio.gather(*(opened(path) for path in paths[warmup:]))
    poll_tasks = [
        asyncio.create_task(poll(port, poll_path.format(job_ids[i % len(job_ids)]), headers, polls))
        for i in range(args.polls)
    ]
    await asyncio.sleep(2 + args.polls / 2000)
    connect_s = time.monotonic() - started
    rss1, threads1 = server.memory_info().rss, server.num_threads()
    watchers = args.streams + args.polls
    counted = watchers - warmup
    # The client holds ~20 objects per connection: keep its own garbage collector's full
    # passes out of the measured delays (they are the client's pauses, not the server's).
    gc.collect()
    gc.freeze()
    cpu0, t0 = server.cpu_times(), time.monotonic()
    # The publisher is another process, as a worker would be.
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        sent = await asyncio.get_running_loop().run_in_executor(
            pool, publisher, job_ids, args.rate, args.seconds
        )
    await asyncio.sleep(1)
    cpu1, t1 = server.cpu_times(), time.monotonic()
    for job_id in job_ids:
        notify(job_id, status="completed", progress=100)
    await asyncio.wait_for(asyncio.gather(*tasks, *poll_tasks, return_exceptions=True), 120)
    if os.environ.get("BENCH_DEBUG"):
        first = min(tally.times)
        buckets: dict[int, list[float]] = {}
        for at, delay in zip(tally.times, tally.delays, strict=True):
            buckets.setdefault(int(at - first), []).append(delay)
        for second, delays in sorted(buckets.items()):
            print(
                second,
                len(delays),
                round(1000 * percentile(delays, 50), 1),
                round(1000 * percentile(delays, 99), 1),
                round(1000 * max(delays), 1),
            )
    per_job_watchers = args.streams / len(job_ids)
    expected = sent * per_job_watchers + args.streams  # progress events, then the final one
    return {
        "server": label,
        "watchers": watchers,
        "streams open": args.streams - len(tally.errors),
        "connect s": round(connect_s, 1),
        "KB per watcher": round((rss1 - rss0) / counted / 1024, 1),
        "threads before/after": f"{threads0}/{threads1}",
        "server CPU %": round(100 * (sum(cpu1[:2]) - sum(cpu0[:2])) / (t1 - t0), 1),
        "deliveries/s": round(tally.events / (t1 - t0)),
        "p50 ms": round(1000 * percentile(tally.delays, 50), 1),
        "p99 ms": round(1000 * percentile(tally.delays, 99), 1),
        "p99.9 ms": round(1000 * percentile(tally.delays, 99.9), 1),
        "final event p99 ms": round(1000 * percentile(tally.final_delays, 99), 1),
        "lost": int(expected - tally.events),
        "streams ended": tally.finished,
        "polls answered": polls.finished,
        "errors": len(tally.errors) + len(polls.errors),
    }


async def worker_latency(port: int, headers: dict[str, str], jobs: int) -> dict[str, Any]:
    """Real echo jobs on a real worker: report → DB write → pub/sub → SSE at a client."""
    from asgiref.sync import sync_to_async

    from jobs import services
    from jobs.models import ApiKey

    owner = (await sync_to_async(ApiKey.objects.select_related("user").get)()).user
    tally = Tally()

    async def one() -> None:
        job, _ = await sync_to_async(services.job_create)(
            owner=owner, job_type="echo", params={"duration_s": 4, "steps": 80}, actor="bench"
        )
        await stream(port, f"/api/v1/jobs/{job.pk}/stream/", headers, asyncio.Event(), tally)

    await asyncio.gather(*(one() for _ in range(jobs)))
    return {
        "progress events": len(tally.delays),
        "p50 ms": round(1000 * percentile(tally.delays, 50), 1),
        "p99 ms": round(1000 * percentile(tally.delays, 99), 1),
        "max ms": round(1000 * max(tally.delays or [float("nan")]), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--polls", type=int, default=1_000)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rate", type=int, default=100, help="job changes per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--latency-jobs", type=int, default=10)
    parser.add_argument("--embedded", action="store_true")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    raise_fd_limit()
    setup = Setup(embedded=args.embedded)
    try:
        setup.prepare()
        print(f"machine: {machine()}\nsetup:   {setup.label}\n", flush=True)
        results = asyncio.run(run(setup, args))
        print_table(results["hold"])
        print("\nworker progress() -> SSE event at the client:", results["latency"])
        report.append(
            "4. Watchers on one web process (target: 10,000 at <= 30 KB each, p99 < 100 ms)",
            "python -m bench.watchers",
            f"{setup.label}; {args.streams:,} SSE streams and {args.polls:,} long-polls over "
            f"{args.jobs} jobs changing {args.rate} times a second for {args.seconds:.0f} s; "
            "the floor is a bare ASGI fan-out under the same load.\n\n"
            + report.table(results["hold"])
            + f"\n\nA real worker's progress() to the SSE event: {results['latency']}",
        )
    finally:
        setup.stop()


async def run(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    from asgiref.sync import sync_to_async

    from jobs.auth import api_key_create
    from jobs.models import Job, JobStatus

    def fixtures() -> tuple[list[str], str]:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("bench")
        _, key = api_key_create(user=user)
        jobs = Job.objects.bulk_create(
            Job(type="echo", owner=user, status=JobStatus.RUNNING) for _ in range(args.jobs)
        )
        return [str(job.pk) for job in jobs], key

    job_ids, key = await sync_to_async(fixtures)()
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    rows = []
    if not args.no_baseline:
        port = free_port()
        proc = setup.uvicorn("baseline", "bench.baselines.minimal_sse:app", port)
        rows.append(
            await hold(
                "bare ASGI fan-out (floor)",
                port,
                proc.pid,
                "/stream/{}",
                "/poll/{}",
                job_ids,
                headers,
                args,
            )
        )
        proc.terminate()
        await sync_to_async(Job.objects.update)(status=JobStatus.RUNNING)
    port = free_port()
    web = setup.jobsite("web", port, JOBSITE_MAX_WATCHERS_PER_KEY="1000000", DB_POOL="1")
    rows.append(
        await hold(
            "Jobsite (Django + DRF auth)",
            port,
            web.pid,
            "/api/v1/jobs/{}/stream/",
            "/api/v1/jobs/{}/poll/?timeout=300&current_status=running",
            job_ids,
            headers,
            args,
        )
    )
    setup.worker("latency")
    latency = await worker_latency(port, headers, args.latency_jobs)
    return {"hold": rows, "latency": latency}


def print_table(rows: list[dict[str, Any]]) -> None:
    names = list(rows[0])
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  " + "  ".join(f"{row[name]!s:>28}" for row in rows))
    if len(rows) == 2 and rows[0]["KB per watcher"]:
        ratio = rows[1]["KB per watcher"] / rows[0]["KB per watcher"]
        print(f"{'memory ratio':<{width}}  {ratio:>28.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
