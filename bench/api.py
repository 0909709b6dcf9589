"""The REST API's capacity on the server production uses, beside a minimal app's.

For ``GET /api/v1/jobs/{id}/`` and ``POST /api/v1/jobs/``, each server's highest rate
(open loop: latency counts from each request's scheduled time) with p99 under 25 ms and
no errors: a ladder of rates, then bisection between the last rate that held and the
first that did not. Both apps run under ``python -m jobsite.serve`` (uvicorn, the same
protocol and thread pool, 2 workers). The baseline (``bench/baselines/minimal_api.py``) is
a minimal Django + DRF job API: hashed-key auth, one INSERT and a publish on commit for
POST, one SELECT for GET. Target: Jobsite's rate is at least 0.8 of the baseline's.

    python -m bench.api                    # 10 s per step
    python -m bench.api --seconds 3        # quicker, noisier
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from bench import load, report
from bench.harness import Setup, free_port, machine

P99_MS = 25.0
LADDER = [50, 100, 200, 300, 400, 500, 650, 800, 1000, 1300, 1600, 2000, 2500, 3000]
TARGET = 0.8


def jobsite_fixtures(jobs: int) -> tuple[str, list[str]]:
    from django.contrib.auth import get_user_model

    from jobs.auth import api_key_create
    from jobs.models import Job, JobStatus

    user = get_user_model().objects.create_user("bench-api")
    _, key = api_key_create(user=user)
    rows = Job.objects.bulk_create(
        Job(type="echo", owner=user, status=JobStatus.COMPLETED, result={"n": i})
        for i in range(jobs)
    )
    return key, [str(job.pk) for job in rows]


def minimal_fixtures(jobs: int) -> tuple[str, list[str]]:
    from django.db import connection

    from bench.baselines.minimal_schema import fill

    with connection.cursor() as cursor:
        return fill(cursor, jobs)


def requests_for(key: str, job_ids: list[str]) -> dict[str, Callable[[int], bytes]]:
    headers = {"Authorization": f"Bearer {key}"}
    post_headers = {**headers, "Content-Type": "application/json"}
    body = json.dumps({"type": "echo", "params": {"payload": 1}}).encode()
    return {
        "GET /jobs/{id}/": lambda i: load.build(
            "GET", f"/api/v1/jobs/{job_ids[i % len(job_ids)]}/", headers
        ),
        "POST /jobs/": lambda i: load.build("POST", "/api/v1/jobs/", post_headers, body),
    }


def holds(outcome: load.Outcome) -> bool:
    summary = outcome.summary()
    return not outcome.errors and summary["p99 ms"] < P99_MS


def highest_rate(
    port: int, make: Callable[[int], bytes], seconds: float, log: list[dict[str, Any]]
) -> int:
    """The highest rate that held (p99 under 25 ms, no errors): ladder, then bisection."""
    load.measure(port, 100, 3, make)  # warm every thread's connections first
    best, failed = 0, None
    for rate in LADDER:
        outcome = load.measure(port, rate, seconds, make)
        log.append({**outcome.summary(), "held": holds(outcome)})
        print(log[-1], flush=True)
        if not holds(outcome):
            failed = rate
            break
        best = rate
    while failed is not None and failed - best > max(10, best // 20):
        rate = (best + failed) // 2
        outcome = load.measure(port, rate, seconds, make)
        log.append({**outcome.summary(), "held": holds(outcome)})
        print(log[-1], flush=True)
        if holds(outcome):
            best = rate
        else:
            failed = rate
    return best


def run(setup: Setup, args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict]]:
    from bench.harness import checkpoint

    servers = {
        "Jobsite": (jobsite_fixtures(1000), None),
        "minimal Django + DRF": (minimal_fixtures(1000), "bench.baselines.minimal_api:app"),
    }
    checkpoint()  # the fixtures' dirty pages are written before, not during
    ports = {}
    for name, (_, app) in servers.items():
        ports[name] = free_port()
        setup.jobsite(f"api-{ports[name]}", ports[name], workers=2, app=app, DB_POOL="1")
    results, steps = [], []
    endpoints = list(requests_for("", [""]))
    for endpoint in endpoints:
        rates = {}
        for name, ((key, job_ids), _) in servers.items():
            make = requests_for(key, job_ids)[endpoint]
            log: list[dict[str, Any]] = []
            rates[name] = highest_rate(ports[name], make, args.seconds, log)
            steps += [{"server": name, "endpoint": endpoint, **row} for row in log]
        ratio = (
            rates["Jobsite"] / rates["minimal Django + DRF"]
            if rates["minimal Django + DRF"]
            else float("nan")
        )
        results.append(
            {
                "endpoint": endpoint,
                "Jobsite rate/s": rates["Jobsite"],
                "minimal rate/s": rates["minimal Django + DRF"],
                "ratio": round(ratio, 2),
                "target": f">= {TARGET}",
                "met": "yes" if ratio >= TARGET else "no",
            }
        )
        print(results[-1], flush=True)
    return results, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--embedded", action="store_true")
    args = parser.parse_args()
    setup = Setup(embedded=args.embedded)
    setup.env["JOBSITE_THROTTLE_RATE"] = "100000000/min"
    try:
        setup.prepare()
        print(f"machine: {machine()}\nsetup:   {setup.label}\n", flush=True)
        results, steps = run(setup, args)
        report.append(
            "2. API capacity beside a minimal Django + DRF app (target: Jobsite's highest "
            f"rate with p99 < {P99_MS:.0f} ms and no errors >= {TARGET} of the minimal app's)",
            "python -m bench.api",
            f"{setup.label}; both under `python -m jobsite.serve --workers 2`; "
            f"{args.seconds:.0f} s per step; load generator on the same cores. Latency counts "
            "from each request's scheduled time.\n\n"
            + report.table(results)
            + "\n\nEvery step:\n\n"
            + report.table(
                steps,
                ["server", "endpoint", "rate/s", "sent", "p50 ms", "p99 ms", "errors", "held"],
            ),
        )
        print()
        for row in results:
            print(
                f"{row['endpoint']:<16} Jobsite {row['Jobsite rate/s']:>5}/s  "
                f"minimal {row['minimal rate/s']:>5}/s  ratio {row['ratio']:.2f} "
                f"(target {TARGET}: {row['met']})"
            )
    finally:
        setup.stop()


if __name__ == "__main__":
    main()
