"""Webhooks: how soon a receiver hears that a job ended, how many deliveries a second a
webhooks worker makes, and what slow receivers cost the jobs (nothing, is the target).

    python -m bench.webhooks                 # production setup (PostgreSQL + Redis)
    python -m bench.webhooks --jobs 500      # smaller

1. Latency: jobs with a callback to a receiver that answers at once, created at a steady
   rate; from the job's ``completed_at`` to the message's arrival (target: p50 < 100 ms).
2. Deliveries per second: the same receiver, the webhooks consumer paused while the jobs
   end, then timed while it drains.
3. Slow receivers: ``--jobs`` echo jobs with a callback to a receiver that takes 2 s per
   answer, beside the same jobs without a callback, interleaved rounds, consumer paused
   while they are created and timed while it drains (target: within 10%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from bench.harness import Setup, machine, percentile
from bench.receiver import Receiver
from bench.report import append, table
from bench.throughput import truncate

JOBS_NODE = "bench@jobs"
HOOKS_NODE = "bench@hooks"


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def completed() -> int:
    from jobs.models import Job, JobStatus

    return Job.objects.filter(status=JobStatus.COMPLETED).count()


def latency(owner: Any, n: int, rate: float) -> dict[str, float]:
    from jobs import services
    from jobs.models import Job

    truncate()
    receiver = Receiver().start()
    try:
        for _ in range(n):
            services.job_create(
                owner=owner, job_type="echo", params={}, actor="bench", callback_url=receiver.url
            )
            time.sleep(1 / rate)
        wait(lambda: len(receiver.received) >= n, 120, f"{n} deliveries")
        ends = {str(pk): at.timestamp() for pk, at in Job.objects.values_list("pk", "completed_at")}
        delays = [
            1000 * (message.at - ends[json.loads(message.body)["jobId"]])
            for message in receiver.received
        ]
    finally:
        receiver.stop()
    return {"p50 ms": percentile(delays, 50), "p99 ms": percentile(delays, 99)}


def delivery_rate(owner: Any, n: int) -> float:
    from jobs import services
    from jobsite.celery import app

    truncate()
    receiver = Receiver().start()
    try:
        app.control.cancel_consumer("webhooks", destination=[HOOKS_NODE], reply=True)
        for _ in range(n):
            services.job_create(
                owner=owner, job_type="echo", params={}, actor="bench", callback_url=receiver.url
            )
        wait(lambda: completed() >= n, 300, f"{n} jobs")
        started = time.monotonic()
        app.control.add_consumer("webhooks", destination=[HOOKS_NODE], reply=True)
        wait(lambda: len(receiver.received) >= n, 300, f"{n} deliveries")
        return n / (time.monotonic() - started)
    finally:
        receiver.stop()


def drain(owner: Any, n: int, url: str) -> float:
    """Jobs per second through the jobs worker: created while it is paused, then timed."""
    from jobs import services
    from jobsite.celery import app

    truncate()
    app.control.cancel_consumer("default", destination=[JOBS_NODE], reply=True)
    for _ in range(n):
        services.job_create(
            owner=owner, job_type="echo", params={}, actor="bench", callback_url=url
        )
    started = time.monotonic()
    app.control.add_consumer("default", destination=[JOBS_NODE], reply=True)
    finished = 0
    while finished < n:
        time.sleep(0.1)
        finished = completed()
    return n / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--embedded", action="store_true")
    args = parser.parse_args()
    setup = Setup(embedded=args.embedded)
    try:
        setup.prepare()
        run(setup, args)
    finally:
        setup.stop()


def run(setup: Setup, args: argparse.Namespace) -> None:
    from django.contrib.auth import get_user_model

    from jobsite.celery import app

    owner = get_user_model().objects.create_user("bench")
    setup.worker("jobs", 8, "default", node=JOBS_NODE)
    setup.worker("hooks", 8, "webhooks", node=HOOKS_NODE, JOBSITE_FETCH_ALLOW_HOSTS="127.0.0.1")
    deadline = time.monotonic() + 60
    while len(app.control.ping(destination=[JOBS_NODE, HOOKS_NODE], timeout=0.5)) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark workers did not start")

    seen = latency(owner, args.latency_jobs, rate=20)
    print(f"latency, job end -> received: p50 {seen['p50 ms']:.0f} ms, p99 {seen['p99 ms']:.0f} ms")
    rate = delivery_rate(owner, args.latency_jobs)
    print(f"deliveries per second (one webhooks worker, -c 8): {rate:.0f}")

    slow = Receiver(delay=2.0).start()
    runs: dict[str, list[float]] = {"without a callback": [], "callback, 2 s receiver": []}
    try:
        for round_no in range(1, args.rounds + 1):
            for name, url in (("without a callback", ""), ("callback, 2 s receiver", slow.url)):
                speed = drain(owner, args.jobs, url)
                runs[name].append(speed)
                print(f"round {round_no} {name:>24}: {speed:6.0f} jobs/s", flush=True)
    finally:
        slow.stop()
    base = statistics.median(runs["without a callback"])
    rows = [
        {
            "": name,
            "jobs/s (median)": f"{statistics.median(speeds):.0f}",
            "vs without": f"{statistics.median(speeds) / base:.0%}",
            "runs": ", ".join(f"{s:.0f}" for s in speeds),
        }
        for name, speeds in runs.items()
    ]
    print(f"\nmachine: {machine()}\nsetup:   {setup.label}\n")
    print(table(rows))
    append(
        "Webhooks (target: p50 from job end to receipt < 100 ms; slow receivers cost jobs < 10%)",
        "python -m bench.webhooks",
        f"{setup.label}; a jobs worker (`-c 8`) and a webhooks worker (`-c 8`); receivers on "
        f"loopback.\n\nFrom a job's end to the message's arrival, {args.latency_jobs} jobs at "
        f"20/s: p50 {seen['p50 ms']:.0f} ms, p99 {seen['p99 ms']:.0f} ms. Deliveries per second "
        f"to a receiver that answers at once: {rate:.0f}.\n\n{args.jobs:,} echo jobs per run, "
        f"{args.rounds} interleaved rounds, the jobs worker timed while it drains:\n\n"
        + table(rows),
    )


if __name__ == "__main__":
    main()
