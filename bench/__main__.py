"""``make bench``: every benchmark against the production setup (PostgreSQL + Redis) on
this machine, each beside its baseline, written to ``docs/benchmarks.md``.

    python -m bench            # the full sizes (over an hour on 2 cores)
    python -m bench --quick    # small sizes, to check the harness (a few minutes)
    python -m bench --skip documents --skip watchers
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FULL = [
    ["bench.throughput"],
    ["bench.api"],
    ["bench.slow_clients"],
    ["bench.webhooks"],
    ["bench.batches"],
    ["bench.latency"],
    ["bench.watchers"],
    ["bench.growth"],
    ["bench.documents"],
    ["bench.web"],
    ["bench.media"],
    ["bench.media_jobs"],
    ["bench.memory_ops"],
    ["bench.purge"],
    ["bench.dashboard"],
]
QUICK = [
    ["bench.throughput", "--jobs", "2000", "--rounds", "1"],
    ["bench.api", "--seconds", "3"],
    ["bench.slow_clients", "--seconds", "5"],
    ["bench.webhooks", "--jobs", "300", "--latency-jobs", "60", "--rounds", "1"],
    ["bench.batches", "--rounds", "1"],
    ["bench.latency", "--jobs", "200"],
    ["bench.watchers", "--streams", "1000", "--polls", "100", "--jobs", "20", "--seconds", "5"],
    ["bench.growth", "--sizes", "10000", "100000", "--jobs", "1000", "--seconds", "5"],
    ["bench.documents", "--runs", "2", "--memories", "50000", "--queries", "50"],
    ["bench.web", "--repeat", "1"],
    ["bench.media", "--models", "light"],
    ["bench.media_jobs", "--runs", "1", "--probes", "10"],
    ["bench.memory_ops", "--memories", "5000"],
    ["bench.purge", "--jobs", "20000", "--seconds", "5"],
    ["bench.dashboard", "--sizes", "10000", "50000"],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument(
        "--skip", action="append", default=[], help="e.g. --skip documents (repeatable)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    versions = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, celery, kombu, redis, psycopg; "
            "print(f'Django {django.get_version()}, Celery {celery.__version__}, "
            "kombu {kombu.__version__}, redis-py {redis.__version__}, "
            "psycopg {psycopg.__version__}')",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    out.write_text(
        "# Benchmarks\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench` "
        f"({'quick sizes' if args.quick else 'full sizes'}) on {os.cpu_count()} cores ({cpu}), "
        f"Python {sys.version.split()[0]}, {versions}, PostgreSQL and Redis on loopback. "
        "Everything (servers, workers, database, broker and load generator) shares these cores: "
        "compare the ratios within a table, not the absolute figures across runs.\n"
    )
    env = {**os.environ, "BENCH_REPORT": str(out)}
    for command in QUICK if args.quick else FULL:
        if command[0].removeprefix("bench.") in args.skip:
            continue
        print(f"\n=== python -m {' '.join(command)}", flush=True)
        subprocess.run([sys.executable, "-m", *command], cwd=ROOT, env=env, check=True)
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
