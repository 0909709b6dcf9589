"""One write path, every engine: the same job driven through claim, progress, retry,
completion and failure leaves the same row and the same events, whichever way the
status writes went (PostgreSQL's one-statement SQL, or the ORM's UPDATE and INSERT).

Each run is compared with one expected record, written out below: the embedded suite
(SQLite, the ORM) and the PostgreSQL suite (both ways, on one database) must all match it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from jobs import publish, services, writes
from jobs.errors import JobError
from jobs.models import Job, JobStatus

pytestmark = pytest.mark.django_db

# Columns whose value is the moment it was written: compared as set or not set.
MOMENTS = {
    "started_at",
    "completed_at",
    "updated_at",
    "heartbeat_at",
    "attempt_started_at",
    "next_retry_at",
    "dispatched_at",
    "cancel_requested_at",
}
UNCOMPARED = {"id", "owner", "created_at"}


def record(job_id: Any) -> dict[str, Any]:
    """The row and its events as plain values, moments reduced to whether they are set."""
    job = Job.objects.get(pk=job_id)
    row = {}
    for field in Job._meta.concrete_fields:
        if field.name in UNCOMPARED:
            continue
        value = getattr(job, field.attname)
        if field.name in MOMENTS:
            assert value is None or isinstance(value, datetime), (field.name, value)
            value = value is not None
        row[field.name] = str(value) if field.name == "input_file" else value
    events = list(job.events.order_by("id"))
    starts = [e.at for e in events if e.to_status == JobStatus.RUNNING]
    # Moments that must be those of particular events, not merely set.
    row["started at the first start"] = bool(starts) and job.started_at == starts[0]
    row["attempt started at the last start"] = bool(starts) and job.attempt_started_at == starts[-1]
    if job.status == JobStatus.COMPLETED:  # the hot completion: one moment for both
        row["completed at the last event"] = job.completed_at == events[-1].at
    return {
        "row": row,
        "events": [
            (e.kind, e.from_status, e.to_status, e.actor, e.reason, e.attempt, e.data)
            for e in events
        ],
    }


def created(user: Any, **params: Any) -> Job:
    with mock.patch.object(publish, "publish_job"):  # no worker of the session takes it
        job, _ = services.job_create(
            owner=user, job_type="echo", params=params, actor="user:alice", max_retries=1
        )
    return job


def retried_then_completed(user: Any) -> dict[str, Any]:
    job = created(user)
    assert services.job_claim(job.pk, task_id="a", worker="w:1").attempts == 1
    assert services.job_record_progress(job.pk, "a", 40.0, "half way")
    assert services.job_attempt_failed(job.pk, task_id="a", exc=RuntimeError("flaky"))
    Job.objects.filter(pk=job.pk).update(next_retry_at=timezone.now())  # the backoff ends
    assert services.job_claim(job.pk, task_id="b", worker="w:2").attempts == 2
    assert services.job_complete(job.pk, task_id="b", attempt=2, result={"pages": 3})
    assert not services.job_complete(job.pk, task_id="a", attempt=1, result={})  # stale
    return record(job.pk)


def failed(user: Any) -> dict[str, Any]:
    job = created(user)
    assert services.job_claim(job.pk, task_id="c", worker="w:1") is not None
    bad = JobError("The file is not a PDF", code="bad_input")
    assert services.job_attempt_failed(job.pk, task_id="c", exc=bad, traceback="Trace")
    assert services.job_claim(job.pk, task_id="d", worker="w:1") is None  # redelivered
    return record(job.pk)


ROW = {
    "type": "echo",
    "params": {
        "duration_s": 0.0,
        "steps": 1,
        "fail_times": 0,
        "payload": None,
        "write_payload": False,
        "allocate_mb": 0,
    },
    "priority": 5,
    "queue": "default",
    "time_limit": 3700,
    "max_retries": 1,
    "retry_base": 0,
    "idempotency_key": None,
    "request_fingerprint": "",
    "callback_url": "",
    "batch": None,
    "input_file": "",
    "run_at": None,
    "checkpoint": None,
    "cancel_requested_at": False,
    "started at the first start": True,
    "attempt started at the last start": True,
}

EXPECTED_RETRIED_THEN_COMPLETED = {
    "row": {
        **ROW,
        "status": JobStatus.COMPLETED,
        "progress": 100.0,
        "current_step": "",
        "result": {"pages": 3},
        "error_code": "",
        "error_message": "",
        "error_traceback": "",
        "attempts": 2,
        "celery_task_id": "b",
        "worker": "w:2",
        "started_at": True,
        "completed_at": True,
        "updated_at": True,
        "heartbeat_at": False,
        "attempt_started_at": True,
        "next_retry_at": False,
        "dispatched_at": False,
        "completed at the last event": True,
    },
    "events": [
        ("transition", "", "pending", "user:alice", "created", 0, None),
        ("transition", "pending", "running", "system:w:1", "attempt started", 1, None),
        (
            "transition",
            "running",
            "retrying",
            "system:worker",
            "attempt 1 failed (internal_error): RuntimeError: flaky; retry in 0.5 s",
            1,
            None,
        ),
        ("transition", "retrying", "running", "system:w:2", "attempt started", 2, None),
        ("transition", "running", "completed", "system:worker", "completed", 2, None),
    ],
}

EXPECTED_FAILED = {
    "row": {
        **ROW,
        "status": JobStatus.FAILED,
        "progress": 0.0,
        "current_step": "",
        "result": None,
        "error_code": "bad_input",
        "error_message": "The file is not a PDF",
        "error_traceback": "Trace",
        "attempts": 1,
        "celery_task_id": "c",
        "worker": "w:1",
        "started_at": True,
        "completed_at": True,
        "updated_at": True,
        "heartbeat_at": False,
        "attempt_started_at": True,
        "next_retry_at": False,
        "dispatched_at": False,
    },
    "events": [
        ("transition", "", "pending", "user:alice", "created", 0, None),
        ("transition", "pending", "running", "system:w:1", "attempt started", 1, None),
        (
            "transition",
            "running",
            "failed",
            "system:worker",
            "attempt 1 failed (bad_input): The file is not a PDF; not retryable",
            1,
            None,
        ),
    ],
}


@pytest.fixture(params=["one statement", "orm"])
def write_path(request, monkeypatch) -> str:
    if request.param == "one statement" and connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's one-statement writes (the embedded default has the ORM's)")
    monkeypatch.setattr(writes, "ONE_STATEMENT", request.param == "one statement")
    # A retry's delay is random: fixed here so the reason reads the same every run.
    monkeypatch.setattr("jobs.services.attempts.retry_delay", lambda *a, **k: 0.5)
    return request.param


def test_a_retried_then_completed_job_is_written_the_same_way_on_every_path(user, write_path):
    assert retried_then_completed(user) == EXPECTED_RETRIED_THEN_COMPLETED


def test_a_failed_job_is_written_the_same_way_on_every_path(user, write_path):
    assert failed(user) == EXPECTED_FAILED
