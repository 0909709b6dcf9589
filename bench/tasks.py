"""Baseline tasks for the throughput benchmark (workers load them with ``-I bench.tasks``).

Each bumps a Redis counter, the same cheap completion signal for every variant."""

from __future__ import annotations

import os
import time

import redis
from celery import shared_task
from django.db import connection

_counter = redis.Redis.from_url(os.environ.get("BENCH_COUNTER_URL", "redis://127.0.0.1:6379/14"))


@shared_task(name="bench.noop", ignore_result=True)
def noop() -> None:
    """Raw Celery: no Job row, no result."""
    _counter.incr("bench:done")


@shared_task(name="bench.tracked", ignore_result=False, track_started=True)
def tracked() -> None:
    """What most Django teams run: django-celery-results records STARTED and SUCCESS."""
    _counter.incr("bench:done")


@shared_task(name="bench.minimal", ignore_result=True)
def minimal(job_id: str) -> None:
    """The floor for any tracker with a row per job: the issue's minimal tracker (an INSERT
    at enqueue, here two UPDATEs), on Jobsite's own table and indexes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET status = 'running', started_at = now() WHERE id = %s", [job_id]
        )
        cursor.execute(
            "UPDATE jobs_job SET status = 'completed', completed_at = now() WHERE id = %s",
            [job_id],
        )
    _counter.incr("bench:done")


@shared_task(name="bench.stamp", ignore_result=True)
def stamp(key: str) -> None:
    """Raw Celery's start time, for the enqueue-to-start latency baseline."""
    _counter.hset("bench:starts", key, time.time())
