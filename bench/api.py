"""The REST API under an open-loop load: ``POST /api/v1/jobs/`` and
``GET /api/v1/jobs/{id}/`` at fixed rates, p50/p99/errors, served by gunicorn (WSGI,
threads) and by uvicorn (ASGI) in the same run.

    python -m bench.api                       # 100, 300, 1000 requests/s, 30 s each
    python -m bench.api --rates 300 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Callable
from typing import Any

from bench import load, report
from bench.harness import Setup, free_port, machine

# Each starts the API on a port, the same app both ways (jobsite/asgi.py runs the REST
# paths as WSGI on a thread pool under uvicorn).
SERVERS: dict[str, Callable[[Setup, int], subprocess.Popen]] = {
    "gunicorn gthread 2x4 (WSGI)": lambda setup, port: setup.gunicorn(f"api-{port}", port),
    "uvicorn 2 workers (ASGI)": lambda setup, port: setup.uvicorn(
        f"api-{port}", "jobsite.asgi:application", port, workers=2, DB_POOL="1"
    ),
}


def fixtures(jobs: int) -> tuple[str, list[str]]:
    from django.contrib.auth import get_user_model

    from jobs.models import Job, JobStatus
    from jobs.services import api_key_create

    user = get_user_model().objects.create_user("bench-api")
    _, key = api_key_create(user=user)
    rows = Job.objects.bulk_create(
        Job(type="echo", owner=user, status=JobStatus.COMPLETED, result={"n": i})
        for i in range(jobs)
    )
    return key, [str(job.pk) for job in rows]


def run(setup: Setup, args: argparse.Namespace) -> list[dict[str, Any]]:
    from bench.harness import checkpoint

    key, job_ids = fixtures(1000)
    checkpoint()  # what earlier benchmarks left dirty is written before, not during
    headers = {"Authorization": f"Bearer {key}"}
    post_headers = {**headers, "Content-Type": "application/json"}
    body = json.dumps({"type": "echo", "params": {"payload": 1}}).encode()
    endpoints = {
        "GET /jobs/{id}/": lambda i: load.build(
            "GET", f"/api/v1/jobs/{job_ids[i % len(job_ids)]}/", headers
        ),
        "POST /jobs/": lambda i: load.build("POST", "/api/v1/jobs/", post_headers, body),
    }
    rows = []
    for server, start in SERVERS.items():
        port = free_port()
        proc = start(setup, port)
        for endpoint, make in endpoints.items():
            # Warm up each path first: every thread opens its own database and broker
            # connections on its first request (a cold start is not the steady state).
            load.measure(port, 100, 3, make)
            for rate in args.rates:
                outcome = load.measure(port, rate, args.seconds, make)
                row = {"server": server, "endpoint": endpoint, **outcome.summary()}
                if outcome.errors:
                    row["error kinds"] = outcome.errors
                rows.append(row)
                print(row, flush=True)
        proc.terminate()
        proc.wait(20)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--embedded", action="store_true")
    args = parser.parse_args()
    setup = Setup(embedded=args.embedded)
    setup.env["JOBSITE_THROTTLE_RATE"] = "100000000/min"
    try:
        setup.prepare()
        print(f"machine: {machine()}\nsetup:   {setup.label}\n", flush=True)
        rows = run(setup, args)
        report.append(
            "2. API under open-loop load (target: p99 < 25 ms at 300 requests/s, no errors)",
            "python -m bench.api",
            f"{setup.label}; {args.seconds:.0f} s per rate; load generator on the same cores. "
            "Latency counts from each request's scheduled time.\n\n"
            + report.table(
                rows,
                ["server", "endpoint", "rate/s", "sent", "p50 ms", "p99 ms", "max ms", "errors"],
            ),
        )
        print()
        for row in rows:
            print(
                f"{row['server']:<30} {row['endpoint']:<16} {row['rate/s']:>5}/s  "
                f"p50 {row['p50 ms']:>7} ms  p99 {row['p99 ms']:>8} ms  errors {row['errors']}"
            )
    finally:
        setup.stop()


if __name__ == "__main__":
    main()
