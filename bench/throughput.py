"""Tracking overhead: Jobsite jobs against raw Celery and against Celery +
django-celery-results, on the same broker and the same worker processes, in interleaved
rounds (A B C A B C ...) because this machine is noisy. A fourth variant runs Jobsite on a
second worker that differs in one setting: no Celery task events for jobs (what Flower's task
list costs). A fifth is the floor for any tracker with a row per job: an INSERT at enqueue
and two UPDATEs per task, on Jobsite's own table.

    python -m bench.throughput                    # 20,000 per run, 3 rounds, PG + Redis
    python -m bench.throughput --jobs 2000 --rounds 1 --embedded
    python -m bench.throughput --workers 2 --concurrency 4 --only raw --only jobsite

Each run enqueues everything with the worker's consumer paused, then resumes it and times
the drain: jobs per second of the workers, not of the producer (enqueue rates are printed
too). The queries one job costs are counted by running one in-process.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

import psutil

from bench import report
from bench.harness import Setup, machine

VARIANTS = {
    "raw": "raw Celery (no Job row, no result)",
    "jobsite": "Jobsite (Job row, events, claim, heartbeat)",
    "dcr": "Celery + django-celery-results (track_started, result_extended)",
    "quiet": "Jobsite, JOBSITE_JOB_TASK_EVENTS=0 (no Flower task events)",
    "minimal": "minimal tracker (INSERT at enqueue, 2 UPDATEs per task)",
}
# The workers each variant runs on: the same command, the second with one setting changed.
GROUPS = {"quiet": "throughput-quiet"}
GROUP = "throughput"
JOB_VARIANTS = ("jobsite", "quiet")  # the variants that create Jobsite jobs


def count_queries(owner: Any) -> tuple[int, int]:
    """Queries to create one job (service layer) and to run it (claim, run, complete)."""
    from unittest import mock

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs import publish, services
    from jobs.tasks import run_job

    with (
        mock.patch.object(publish, "publish_on_commit"),
        CaptureQueriesContext(connection) as created,
    ):
        job, _ = services.job_create(owner=owner, job_type="echo", params={}, actor="bench")
    with CaptureQueriesContext(connection) as ran:
        run_job.apply(args=[str(job.pk)], task_id=str(uuid.uuid4()))
    job.refresh_from_db()
    assert job.status == "completed", job.status
    return len(created), len(ran)


def truncate() -> None:
    from django.db import connection

    tables = [
        "jobs_deliveryattempt",
        "jobs_delivery",
        "jobs_jobevent",
        "jobs_job",
        "jobs_batch",
        "django_celery_results_taskresult",
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # No ANALYZE of the empty table: statistics saying "empty" make every index look
            # as cheap as the primary key (a production table is never analyzed empty).
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def nodes(group: str, workers: int) -> list[str]:
    """The node names of a group of ``workers`` worker instances."""
    return [f"bench@{group}-{i}" for i in range(1, workers + 1)]


def run_once(variant: str, n: int, owner: Any, counter: Any, workers: int) -> dict[str, float]:
    from jobs import services
    from jobs.models import Job, JobStatus
    from jobsite.celery import app

    truncate()
    counter.set("bench:done", 0)
    everyone = [node for group in {GROUP, *GROUPS.values()} for node in nodes(group, workers)]
    mine = nodes(GROUPS.get(variant, GROUP), workers)
    app.control.cancel_consumer("default", destination=everyone, reply=True)
    started = time.monotonic()
    for _ in range(n):
        if variant in JOB_VARIANTS:
            services.job_create(owner=owner, job_type="echo", params={}, actor="bench")
        elif variant == "minimal":
            row = Job.objects.create(owner=owner, type="echo")
            app.send_task("bench.minimal", args=[str(row.pk)], queue="default")
        else:
            app.send_task("bench.noop" if variant == "raw" else "bench.tracked", queue="default")
    enqueued = time.monotonic() - started

    def done() -> int:
        if variant in JOB_VARIANTS:
            return Job.objects.filter(status=JobStatus.COMPLETED).count()
        return int(counter.get("bench:done") or 0)

    cpu_before = cpu_by_program(mine)
    started = time.monotonic()
    app.control.add_consumer("default", destination=mine, reply=True)
    finished = 0
    while finished < n:
        # The count is a query for Jobsite (a scan of up to n rows): poll rarely while far
        # from done, every 0.05 s near the end; the same for all variants.
        rate = finished / (time.monotonic() - started)
        time.sleep(min(2.0, max(0.05, (n - finished) / rate / 2)) if rate else 0.1)
        finished = done()
    drained = time.monotonic() - started
    cpu_after = cpu_by_program(mine)
    cpu_ms = {
        name: 1000 * (cpu_after.get(name, 0) - cpu_before.get(name, 0)) / n
        for name in ("celery", "main", "postgres", "redis")
    }
    return {
        "jobs/s": n / drained,
        "enqueue/s": n / enqueued,
        **{f"{k} ms": v for k, v in cpu_ms.items()},
    }


def cpu_by_program(workers: list[str]) -> dict[str, float]:
    """CPU seconds used so far by the ``workers`` (node names), PostgreSQL and Redis."""
    totals: dict[str, float] = {}
    worker_pids: set[int] = set()
    seen = []
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times", "ppid"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            name = proc.info["name"] or ""
            times = proc.info["cpu_times"]
        except (psutil.Error, TypeError):
            continue
        if times is None:
            continue
        if "celery" in cmd and "worker" in cmd and any(f" {n} " in f"{cmd} " for n in workers):
            worker_pids.add(proc.pid)
            seen.append((proc.info["ppid"], times.user + times.system))
            key = "celery"
        elif name.startswith("postgres"):
            key = "postgres"
        elif name.startswith(("redis", "valkey")):
            key = "redis"
        else:
            continue
        # children_*: PostgreSQL's postmaster reaps the backends that exit (a pool process
        # reconnects every CELERY_DB_REUSE_MAX tasks): their CPU is counted there.
        cpu = times.user + times.system + times.children_user + times.children_system
        totals[key] = totals.get(key, 0.0) + cpu
    # The workers' main processes (their parent is not one of them) apart from their pools.
    totals["main"] = sum(cpu for ppid, cpu in seen if ppid not in worker_pids)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    # More pool processes than cores, as I/O-bound work wants: a Jobsite job waits on two
    # commits, and eight processes overlap those waits (raw Celery is no slower for it).
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="worker instances per variant")
    parser.add_argument("--embedded", action="store_true")
    parser.add_argument("--only", choices=list(VARIANTS), action="append", help="(repeatable)")
    args = parser.parse_args()
    setup = Setup(embedded=args.embedded)
    counter_url = setup.env["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/14"
    setup.env["BENCH_COUNTER_URL"] = counter_url
    try:
        setup.prepare()
        summarize(run(setup, args, counter_url), setup, args)
    finally:
        setup.stop()


def run(setup: Setup, args: argparse.Namespace, counter_url: str) -> dict[str, Any]:
    import redis
    from django.contrib.auth import get_user_model

    from jobsite.celery import app

    owner = get_user_model().objects.create_user("bench")
    chosen = args.only or list(VARIANTS)
    started = []
    for group in {GROUPS.get(name, GROUP) for name in chosen}:
        env = {"JOBSITE_JOB_TASK_EVENTS": "0"} if group == GROUPS["quiet"] else {}
        for node in nodes(group, args.workers):
            setup.worker(
                node.split("@")[1], args.concurrency, node=node, imports="bench.tasks", **env
            )
            started.append(node)
    deadline = time.monotonic() + 60
    while len(app.control.ping(destination=started, timeout=0.5)) < len(started):
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark workers did not start")
    created, ran = count_queries(owner)
    counter = redis.Redis.from_url(counter_url)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    for round_no in range(1, args.rounds + 1):
        for name in chosen:
            outcome = run_once(name, args.jobs, owner, counter, args.workers)
            results[name].append(outcome)
            print(
                f"round {round_no} {name:>8}: {outcome['jobs/s']:8.0f} jobs/s "
                f"(enqueued at {outcome['enqueue/s']:.0f}/s)",
                flush=True,
            )
    return {"results": results, "queries": (created, ran)}


def worker_label(args: argparse.Namespace) -> str:
    if args.workers == 1:
        return f"one prefork worker (`-c {args.concurrency}`)"
    return f"{args.workers} prefork workers per variant (`-c {args.concurrency}` each)"


def cpu_summary(runs: list[dict[str, float]]) -> str:
    def ms(part: str) -> str:
        return f"{statistics.median(r[f'{part} ms'] for r in runs):.2f}"

    return f"{ms('celery')} ({ms('main')}) / {ms('postgres')} / {ms('redis')}"


def summarize(outcome: dict[str, Any], setup: Setup, args: argparse.Namespace) -> None:
    results, (created, ran) = outcome["results"], outcome["queries"]
    raw = statistics.median(r["jobs/s"] for r in results.get("raw") or results[next(iter(results))])
    print(
        f"\nmachine: {machine()}\nsetup:   {setup.label}, {worker_label(args)}, "
        f"{args.jobs:,} per run, {args.rounds} interleaved rounds (medians)\n"
    )
    print(
        f"{'':<66} {'jobs/s':>8} {'vs raw':>7} {'enqueue/s':>10}   CPU ms per job: "
        "worker (its main process) / PostgreSQL / Redis"
    )
    for name, runs in results.items():
        label = VARIANTS[name]
        speed = statistics.median(r["jobs/s"] for r in runs)
        enqueue = statistics.median(r["enqueue/s"] for r in runs)
        cpu = cpu_summary(runs)
        print(f"{label:<66} {speed:>8.0f} {speed / raw:>7.0%} {enqueue:>10.0f}   {cpu}")
    print(f"\nqueries per Jobsite job: {created} to create, {ran} to run ({created + ran} in all)")
    rows = []
    for name, runs in results.items():
        speed = statistics.median(r["jobs/s"] for r in runs)
        rows.append(
            {
                "": VARIANTS[name],
                "jobs/s (median)": f"{speed:.0f}",
                "vs raw": f"{speed / raw:.0%}",
                "runs": ", ".join(f"{r['jobs/s']:.0f}" for r in runs),
                "CPU ms per job: worker (its main process) / PostgreSQL / Redis": cpu_summary(runs),
            }
        )
    report.append(
        "1. Tracking overhead (target: Jobsite >= 80% of raw Celery)",
        "python -m bench.throughput",
        f"{setup.label}; {worker_label(args)}; {args.jobs:,} per run, "
        f"{args.rounds} interleaved rounds; each run enqueues with the consumer paused, then "
        "times the drain.\n\n"
        + report.table(rows)
        + f"\n\nQueries per Jobsite job: {created} to create, {ran} to run.",
    )


if __name__ == "__main__":
    main()
