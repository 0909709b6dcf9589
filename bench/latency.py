"""Latency: from ``POST /api/v1/jobs/`` returning to the worker starting the job, over
sequential jobs, beside raw Celery (``send_task`` returning to the task starting) on the
same broker and worker; and from a worker's ``progress()`` to the SSE event at a client.

    python -m bench.latency              # 1,000 sequential jobs
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import httpx

from bench import report
from bench.harness import Setup, free_port, machine, percentile


def summarize(delays: list[float]) -> dict[str, float]:
    return {
        "p50 ms": round(1000 * percentile(delays, 50), 2),
        "p99 ms": round(1000 * percentile(delays, 99), 2),
        "max ms": round(1000 * max(delays), 2),
    }


def jobsite_starts(url: str, key: str, n: int, gap: float) -> list[float]:
    from jobs.models import Job

    returned: dict[str, float] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(n):
            response = client.post("/api/v1/jobs/", json={"type": "echo"})
            returned[response.json()["job_id"]] = time.time()
            time.sleep(gap)
    deadline = time.monotonic() + 60
    while Job.objects.filter(pk__in=returned, started_at__isnull=True).exists():
        assert time.monotonic() < deadline, "jobs did not start"
        time.sleep(0.2)
    starts = dict(Job.objects.filter(pk__in=returned).values_list("pk", "started_at"))
    return [starts[uuid.UUID(k)].timestamp() - t for k, t in returned.items()]


def celery_starts(counter: Any, n: int, gap: float) -> list[float]:
    from jobsite.celery import app

    counter.delete("bench:starts")
    returned = {}
    for i in range(n):
        app.send_task("bench.stamp", args=[str(i)], queue="default")
        returned[str(i)] = time.time()
        time.sleep(gap)
    deadline = time.monotonic() + 60
    while counter.hlen("bench:starts") < n:
        assert time.monotonic() < deadline, "tasks did not start"
        time.sleep(0.2)
    starts = {k.decode(): float(v) for k, v in counter.hgetall("bench:starts").items()}
    return [starts[k] - t for k, t in returned.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between jobs")
    parser.add_argument("--embedded", action="store_true")
    args = parser.parse_args()
    setup = Setup(embedded=args.embedded)
    counter_url = setup.env["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/14"
    setup.env.update(BENCH_COUNTER_URL=counter_url, JOBSITE_THROTTLE_RATE="100000000/min")
    try:
        setup.prepare()
        run(setup, args, counter_url)
    finally:
        setup.stop()


def run(setup: Setup, args: argparse.Namespace, counter_url: str) -> None:
    import redis
    from django.contrib.auth import get_user_model

    from bench.watchers import worker_latency
    from jobs.auth import api_key_create
    from jobsite.celery import app

    _, key = api_key_create(user=get_user_model().objects.create_user("bench-latency"))
    node = "bench@latency"
    setup.worker("latency", 2, node=node, imports="bench.tasks")
    while not app.control.ping(destination=[node], timeout=0.5):
        time.sleep(0.2)
    rest, streams = free_port(), free_port()
    setup.gunicorn("rest", rest)
    setup.jobsite("streams", streams, DB_POOL="1")
    counter = redis.Redis.from_url(counter_url)
    jobsite_starts(f"http://127.0.0.1:{rest}", key, 20, args.gap)  # warm up
    celery_starts(counter, 20, args.gap)
    rows = [
        {
            "path": "raw Celery: send_task returns -> task starts",
            **summarize(celery_starts(counter, args.jobs, args.gap)),
        },
        {
            "path": "Jobsite: POST returns -> worker claims the job",
            **summarize(jobsite_starts(f"http://127.0.0.1:{rest}", key, args.jobs, args.gap)),
        },
    ]
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    progress = asyncio.run(worker_latency(streams, headers, 10))
    rows.append(
        {
            "path": "Jobsite: progress() in the worker -> SSE event at a client",
            "p50 ms": progress["p50 ms"],
            "p99 ms": progress["p99 ms"],
            "max ms": progress["max ms"],
        }
    )
    print(f"machine: {machine()}\nsetup:   {setup.label}, {args.jobs:,} sequential jobs\n")
    for row in rows:
        print(
            f"{row['path']:<60} p50 {row['p50 ms']:>7} ms  p99 {row['p99 ms']:>7} ms  "
            f"max {row['max ms']:>7} ms"
        )
    report.append(
        "3. Latency (targets: enqueue -> start p50 < 10 ms; progress -> SSE p50 < 50 ms)",
        "python -m bench.latency",
        f"{setup.label}; {args.jobs:,} sequential jobs, {args.gap * 1000:.0f} ms apart; "
        "REST under gunicorn, streams under jobsite.serve (uvicorn), one prefork worker "
        "(2 processes).\n\n" + report.table(rows),
    )


if __name__ == "__main__":
    main()
