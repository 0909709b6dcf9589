"""Batches: how long ``POST /api/v1/batches/`` takes to create 1,000 jobs in one
transaction, beside the same 1,000 jobs created one request at a time.

    python -m bench.batches                  # production setup (PostgreSQL + Redis)
    python -m bench.batches --embedded       # SQLite + Valkey

In-process (Django's test client, a real database and broker, no worker consuming): what
is measured is the request's own work (parsing, validating every specification, the
inserts, the publishes handed to the background publisher), not the network.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from bench.harness import Setup, machine
from bench.report import append, table
from bench.throughput import truncate


def client(owner: Any) -> Any:
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(owner)
    return api


def one_batch(api: Any, n: int) -> float:
    specs = [{"type": "echo", "params": {"payload": i}} for i in range(n)]
    started = time.perf_counter()
    response = api.post("/api/v1/batches/", {"jobs": specs}, format="json")
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.content[:300]
    assert len(response.json()["job_ids"]) == n
    return elapsed


def one_by_one(api: Any, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        response = api.post(
            "/api/v1/jobs/", {"type": "echo", "params": {"payload": i}}, format="json"
        )
        assert response.status_code == 202, response.content[:300]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
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

    from jobs import publish

    publish.publish_in_background()  # as a web process does
    owner = get_user_model().objects.create_user("bench-batches")
    api = client(owner)
    rows = []
    batch_times, single_times = [], []
    for _ in range(args.rounds):
        truncate()
        batch_times.append(one_batch(api, args.jobs))
        truncate()
        single_times.append(one_by_one(api, args.jobs))
    best_batch, best_single = min(batch_times), min(single_times)
    rows.append(
        {
            "how": f"one POST /batches/ of {args.jobs}",
            "seconds (best)": f"{best_batch:.2f}",
            "median": f"{statistics.median(batch_times):.2f}",
            "jobs/s": f"{args.jobs / best_batch:.0f}",
        }
    )
    rows.append(
        {
            "how": f"{args.jobs} POST /jobs/ (baseline)",
            "seconds (best)": f"{best_single:.2f}",
            "median": f"{statistics.median(single_times):.2f}",
            "jobs/s": f"{args.jobs / best_single:.0f}",
        }
    )
    body = table(rows)
    print(f"\nmachine: {machine()}\nsetup:   {setup.label}\n\n{body}")
    append(
        "Batches: creating 1,000 jobs in one request",
        "python -m bench.batches",
        f"{setup.label}; in-process test client, best of {args.rounds} rounds.\n\n{body}",
    )


if __name__ == "__main__":
    main()
