"""The purge of 1,000,000 old job records (each with two events) on PostgreSQL while the
API is under load: the purge's time, and the API's p99 during it beside its p99 without.
Target: the purge under 60 s.

The purge runs as it does in production: a system-owned ``purge`` job on the maintenance
queue, started the way celery-beat starts it. The load is an open-loop mix of GETs of
recent jobs and POSTs of new ones (``bench.load``).

    python -m bench.purge [--jobs 1000000] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from typing import Any

from bench import load, report
from bench.harness import Setup, checkpoint, free_port, machine, wait_job

FILL_JOBS = """
INSERT INTO jobs_job (
    id, type, params, status, progress, current_step, result, error_code, error_message,
    error_traceback, attempts, max_retries, retry_base, priority, queue, time_limit, owner_id,
    request_fingerprint, callback_url, input_file, celery_task_id, worker, created_at,
    started_at, completed_at, updated_at)
SELECT gen_random_uuid(), 'echo', '{"payload": 1}', 'completed', 100, '', '{"n": 1}', '', '',
    '', 1, 3, 0, 5, 'default', 600, %s, '', '', '', '', 'w:1',
    now() - interval '40 days' - g * interval '1 second',
    now() - interval '40 days' - g * interval '1 second',
    now() - interval '40 days' - g * interval '1 second',
    now() - interval '40 days' - g * interval '1 second'
FROM generate_series(1, %s) AS g
"""
FILL_EVENTS = """
INSERT INTO jobs_jobevent (job_id, at, kind, from_status, to_status, actor, reason, attempt)
SELECT id, completed_at, 'transition', f, t, 'system:worker', 'bench', 1
FROM jobs_job, (VALUES ('', 'pending'), ('running', 'completed')) AS e(f, t)
WHERE completed_at < now() - interval '31 days'
"""


def fill(owner_id: int, jobs: int) -> float:
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        done = 0
        while done < jobs:
            batch = min(250_000, jobs - done)
            cursor.execute(FILL_JOBS, [owner_id, batch])
            done += batch
        cursor.execute(FILL_EVENTS)
        cursor.execute("VACUUM ANALYZE jobs_job")
        cursor.execute("VACUUM ANALYZE jobs_jobevent")
    checkpoint()
    return time.monotonic() - started


def run(jobs: int, rate: int, seconds: float) -> dict[str, Any]:
    setup = Setup(embedded=False)
    try:
        setup.prepare()
        from django.contrib.auth import get_user_model

        from jobs import schedules, services
        from jobs.auth import api_key_create
        from jobs.models import Job, JobArchive

        owner = get_user_model().objects.create_user("bench-purge")
        _, key = api_key_create(user=owner)
        setup.worker("worker", concurrency=4, queues="default,maintenance")
        port = free_port()
        # The per-key rate limit (6,000/min by default) would answer the load 429 itself.
        setup.gunicorn("rest", port, JOBSITE_THROTTLE_RATE="1000000/min")
        out: dict[str, Any] = {"machine": machine(), "jobs": jobs}
        out["fill s"] = round(fill(owner.pk, jobs), 1)
        recent = [
            str(services.job_create(owner=owner, job_type="echo", params={}, actor="bench")[0].pk)
            for _ in range(200)
        ]
        random.shuffle(recent)
        headers = {"Authorization": f"Bearer {key}"}
        body = json.dumps({"type": "echo", "params": {"payload": 1}}).encode()

        def one(i: int) -> bytes:
            if i % 4 == 3:  # a quarter creates, the rest read
                post = {**headers, "Content-Type": "application/json"}
                return load.build("POST", "/api/v1/jobs/", post, body)
            return load.build("GET", f"/api/v1/jobs/{recent[i % len(recent)]}/", headers)

        load.measure(port, rate, 3, one)  # warm up
        out["without"] = load.measure(port, rate, seconds, one).summary()

        during: dict[str, Any] = {}
        loader = threading.Thread(
            target=lambda: during.update(load.measure(port, rate, seconds, one).summary())
        )
        started = time.monotonic()
        job = schedules.start("purge", {})
        assert job is not None
        loader.start()
        result = wait_job(job.pk, poll=0.1)["result"]
        out["purge s"] = round(time.monotonic() - started, 1)
        loader.join()
        out["during"] = during
        out["result"] = result
        out["archived"] = JobArchive.objects.count()
        out["left"] = Job.objects.filter(completed_at__lt=job.created_at).count()
        return out
    finally:
        setup.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    out = run(args.jobs, args.rate, args.seconds)
    rows = [
        {"API load": "without a purge", **out["without"]},
        {"API load": "while the purge runs", **out["during"]},
    ]
    print(out["machine"])
    print(
        f"purged {out['result']['deleted']:,} job records ({2 * out['result']['deleted']:,} "
        f"events) in {out['purge s']} s (target 60 s); {out['archived']:,} outcomes archived; "
        f"{out['left']} old records left; fill {out['fill s']} s"
    )
    print(report.table(rows))
    report.append(
        "Purging 1,000,000 job records under API load",
        "python -m bench.purge",
        f"{out['machine']}; PostgreSQL + Redis, gunicorn, one worker (4 processes) for "
        f"default and maintenance. {out['result']['deleted']:,} finished jobs 40 days old, "
        f"two events each, purged by the scheduled purge job in **{out['purge s']} s** "
        f"(target 60 s), their outcomes archived; the API under an open-loop load of "
        f"{args.rate}/s (three GETs of recent jobs to one POST) for {args.seconds:g} s "
        "without, then during, the purge:\n\n" + report.table(rows),
    )


if __name__ == "__main__":
    main()
