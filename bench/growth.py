"""Growth: does a big jobs table slow the hot paths? Throughput and API p99 with 10,000
and with 5,000,000 job rows already in the table (PostgreSQL).

    python -m bench.growth                     # 10,000 then 5,000,000 rows
    python -m bench.growth --sizes 10000 500000 --jobs 2000
"""

from __future__ import annotations

import argparse
import random
import time

from bench import load, report
from bench.harness import Setup, checkpoint, free_port, machine

FILL = """
INSERT INTO jobs_job (
    id, type, params, status, progress, current_step, result, error_code, error_message,
    error_traceback, attempts, max_retries, retry_base, priority, queue, time_limit, owner_id,
    request_fingerprint, callback_url, input_file, celery_task_id, worker, created_at,
    started_at, completed_at, updated_at)
SELECT gen_random_uuid(), 'echo', '{}', 'completed', 100, 'step 1 of 1', 'null', '', '', '',
    1, 3, 0, 5, 'default', 600, %s, '', '', '', '', '',
    now() - g * interval '1 second', now() - g * interval '1 second',
    now() - g * interval '1 second', now() - g * interval '1 second'
FROM generate_series(1, %s) AS g
"""


def fill(rows: int, owner_id: int) -> float:
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_deliveryattempt, jobs_delivery, jobs_jobevent, jobs_job")
        done = 0
        while done < rows:
            batch = min(500_000, rows - done)
            cursor.execute(FILL, [owner_id, batch])
            done += batch
        cursor.execute("VACUUM ANALYZE jobs_job")
    # Otherwise the checkpointer spends the next minutes writing out the fill.
    checkpoint()
    return time.monotonic() - started


def drain(n: int, node: str) -> float:
    from django.contrib.auth import get_user_model

    from jobs import services
    from jobs.models import Job, JobStatus
    from jobsite.celery import app

    # The drained jobs get an owner of their own, so counting the finished ones reads only
    # theirs (the count is the benchmark's, not the platform's: keep it out of the way).
    owner = get_user_model().objects.create_user(f"bench-drain-{time.monotonic_ns()}")
    app.control.cancel_consumer("default", destination=[node], reply=True)
    # The previous size's API load left its POSTed jobs' messages in the queue (their rows
    # are gone with the refill): without this the drain would also work through those.
    app.control.purge()
    for _ in range(n):
        services.job_create(owner=owner, job_type="echo", params={}, actor="bench")
    started = time.monotonic()
    app.control.add_consumer("default", destination=[node], reply=True)
    while Job.objects.filter(owner=owner, status=JobStatus.COMPLETED).count() < n:
        time.sleep(0.2)
    speed = n / (time.monotonic() - started)
    # The API load that follows is measured alone, as in benchmark 2.
    app.control.cancel_consumer("default", destination=[node], reply=True)
    return speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 5_000_000])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs drained per size")
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    setup = Setup(embedded=False)
    setup.env["JOBSITE_THROTTLE_RATE"] = "100000000/min"
    try:
        setup.prepare()
        run(setup, args)
    finally:
        setup.stop()


def run(setup: Setup, args: argparse.Namespace) -> None:
    import json

    from django.contrib.auth import get_user_model

    from jobs.auth import api_key_create
    from jobs.models import Job
    from jobsite.celery import app

    owner = get_user_model().objects.create_user("bench-growth")
    _, key = api_key_create(user=owner)
    node = "bench@growth"
    setup.worker("growth", 8, node=node)
    while not app.control.ping(destination=[node], timeout=0.5):
        time.sleep(0.2)
    port = free_port()
    setup.gunicorn("rest", port)
    headers = {"Authorization": f"Bearer {key}"}
    body = json.dumps({"type": "echo", "params": {"payload": 1}}).encode()
    rows = []
    for size in args.sizes:
        fill_s = fill(size, owner.pk)
        sample = [str(pk) for pk in Job.objects.order_by("?").values_list("pk", flat=True)[:1000]]
        random.shuffle(sample)
        speed = drain(args.jobs, node)

        def get_one(i: int, s: list[str] = sample) -> bytes:
            return load.build("GET", f"/api/v1/jobs/{s[i % len(s)]}/", headers)

        def post_one(i: int) -> bytes:
            post_headers = {**headers, "Content-Type": "application/json"}
            return load.build("POST", "/api/v1/jobs/", post_headers, body)

        load.measure(port, 100, 3, get_one)  # warm up, as in benchmark 2
        get = load.measure(port, args.rate, args.seconds, get_one).summary()
        load.measure(port, 100, 3, post_one)
        post = load.measure(port, args.rate, args.seconds, post_one).summary()
        listing = load.measure(
            port,
            50,
            args.seconds / 3,
            lambda i: load.build("GET", "/api/v1/jobs/?status=completed&limit=50", headers),
        ).summary()
        row = {
            "rows in table": f"{size:,}",
            "fill s": round(fill_s, 1),
            "drain jobs/s": round(speed),
            f"GET p99 ms @{args.rate}/s": get["p99 ms"],
            f"POST p99 ms @{args.rate}/s": post["p99 ms"],
            "list p99 ms @50/s": listing["p99 ms"],
            "errors": get["errors"] + post["errors"] + listing["errors"],
        }
        rows.append(row)
        print(row, flush=True)
    if len(rows) > 1:  # the smallest table is the baseline: how the biggest compares
        first, last = rows[0], rows[-1]
        ratio = {"rows in table": f"{last['rows in table']} vs {first['rows in table']}"}
        for name in list(first)[2:-1]:
            ratio[name] = f"{last[name] / first[name]:.2f}x" if first[name] else "-"
        rows.append(ratio)
        print(ratio, flush=True)
    print(f"\nmachine: {machine()}\nsetup:   {setup.label}")
    report.append(
        "5. Growth (target: flat from 10,000 to 5,000,000 rows)",
        "python -m bench.growth",
        f"{setup.label}; the table is filled with finished jobs of the benchmark's own user "
        f"(the worst case for its owner-scoped indexes), then {args.jobs:,} jobs are drained "
        "and the API is loaded as in benchmark 2.\n\n" + report.table(rows),
    )


if __name__ == "__main__":
    main()
