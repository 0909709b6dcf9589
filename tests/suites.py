"""``make test``: the whole suite on the embedded default, then on PostgreSQL + Redis.

The second run uses ``JOBSITE_TEST_DATABASE_URL`` (default: the local PostgreSQL's ``test``
database) and ``JOBSITE_TEST_REDIS_URL`` (default: the local Redis, databases 8 and 9).
Under ``CI=true`` it is required: unreachable services fail the run instead of skipping it.
Extra arguments go to pytest (``make test ARGS="-k cancel"``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.plugin import reachable

PG = os.environ.get("JOBSITE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("JOBSITE_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


def run(name: str, env: dict[str, str], args: list[str]) -> tuple[str, int, float]:
    print(f"\n=== {name} ===", flush=True)
    started = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "pytest", *args], env=env)
    return name, code, time.monotonic() - started


def main() -> int:
    args = sys.argv[1:]
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")
    }
    results = [run("embedded default: SQLite + Valkey", base, args)]
    external = {
        **base,
        "DATABASE_URL": PG,
        "CELERY_BROKER_URL": f"{REDIS}/8",
        "CACHE_URL": f"{REDIS}/9",
        "JOBSITE_SUITE": "repeat",  # what reaches no service ran in the first suite
    }
    down = [url for url in (PG, REDIS) if not reachable(url)]
    if not down:
        results.append(run("PostgreSQL + Redis", external, args))
    elif os.environ.get("CI", "").lower() == "true":
        print(f"\nPostgreSQL + Redis run REQUIRED under CI=true, unreachable: {down}", flush=True)
        results.append(("PostgreSQL + Redis", 1, 0.0))
    else:
        print(f"\nPostgreSQL + Redis run skipped, unreachable: {down}", flush=True)
    print("\n=== summary ===")
    for name, code, seconds in results:
        print(f"{'passed' if code == 0 else 'FAILED'}  {name}  ({seconds:.0f} s)")
    return max(code for _, code, _ in results)


if __name__ == "__main__":
    sys.exit(main())
