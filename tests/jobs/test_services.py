"""Services called directly: create, claim, fail/retry, cancel, restart, progress."""

from __future__ import annotations

import time
from datetime import timedelta
from unittest import mock

import psutil
import pytest
from billiard.exceptions import WorkerLostError
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import publish, runtime, services, writes
from jobs.errors import (
    AttemptLost,
    Conflict,
    IdempotencyMismatch,
    InvalidInput,
    JobCancelled,
    JobError,
    UnknownJobType,
)
from jobs.models import Job, JobEvent, JobStatus
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db


def create(user, **kwargs):
    params = kwargs.pop("params", {"duration_s": 0})
    job, _ = services.job_create(owner=user, job_type="echo", params=params, actor="test", **kwargs)
    return job


def running(user, task_id="t1", **fields):
    """A job this test claimed: the test is its worker.

    Its message is not published: in a transactional test the row commits at once, and
    once an integration test has started the session's worker (it lives until the end of
    the run, on the same broker and database) a published message could be claimed by that
    worker before this claim, which then returns None.
    """
    with mock.patch.object(publish, "publish_job"):
        job = create(user, **{k: v for k, v in fields.items() if k in ("max_retries",)})
    claimed = services.job_claim(job.pk, task_id=task_id, worker="w:1")
    assert claimed is not None
    return claimed


def test_create_writes_row_and_event_and_publishes_after_commit(
    user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        job = create(user, params={"duration_s": 1, "payload": [1, 2]})
    assert job.status == JobStatus.PENDING
    assert job.params == {
        "duration_s": 1.0,
        "steps": 1,
        "fail_times": 0,
        "payload": [1, 2],
        "write_payload": False,
        "allocate_mb": 0,
    }
    assert job.queue == "default" and job.max_retries == 3
    assert JobEvent.objects.get(job=job).to_status == JobStatus.PENDING
    assert len(callbacks) == 1  # the publish waits for the commit


def test_create_in_the_future_is_scheduled_and_not_published(
    user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        job = create(user, run_at=timezone.now() + timedelta(hours=1))
    assert job.status == JobStatus.SCHEDULED
    assert callbacks == []


def test_bad_params_name_the_field(user):
    with pytest.raises(InvalidInput) as err:
        create(user, params={"duration_s": "soon", "bogus": 1})
    assert set(err.value.details) == {"params.duration_s", "params.bogus"}


def test_unknown_type(user):
    with pytest.raises(UnknownJobType):
        services.job_create(owner=user, job_type="nope", params={}, actor="t")


def test_idempotency_same_request_returns_original_other_request_is_422(user):
    first, created = services.job_create(
        owner=user, job_type="echo", params={}, actor="t", idempotency_key="k", fingerprint="a"
    )
    again, created_again = services.job_create(
        owner=user, job_type="echo", params={}, actor="t", idempotency_key="k", fingerprint="a"
    )
    assert created and not created_again and again.pk == first.pk
    with pytest.raises(IdempotencyMismatch):
        services.job_create(
            owner=user, job_type="echo", params={}, actor="t", idempotency_key="k", fingerprint="b"
        )
    assert Job.objects.count() == 1


def test_idempotency_keys_are_per_owner(user, other_user):
    a, _ = services.job_create(
        owner=user, job_type="echo", params={}, actor="t", idempotency_key="k"
    )
    b, _ = services.job_create(
        owner=other_user, job_type="echo", params={}, actor="t", idempotency_key="k"
    )
    assert a.pk != b.pk


def test_claim_once_then_skip(user):
    job = create(user)
    first = services.job_claim(job.pk, task_id="a", worker="w:1")
    second = services.job_claim(job.pk, task_id="b", worker="w:2")
    assert first is not None and second is None
    job.refresh_from_db()
    assert (job.status, job.attempts, job.celery_task_id) == (JobStatus.RUNNING, 1, "a")


def test_claim_skips_cancelled_and_missing_and_not_yet_due(user):
    job = create(user)
    services.job_cancel(job, actor="t")
    assert services.job_claim(job.pk, task_id="a", worker="w") is None
    assert (
        services.job_claim("00000000-0000-0000-0000-000000000000", task_id="a", worker="w") is None
    )
    later = create(user)
    Job.objects.filter(pk=later.pk).update(
        status=JobStatus.RETRYING, next_retry_at=timezone.now() + timedelta(minutes=5)
    )
    assert services.job_claim(later.pk, task_id="a", worker="w") is None


def test_retryable_failure_retries_with_backoff_then_fails_keeping_last_error(
    user, django_capture_on_commit_callbacks
):
    job = running(user, max_retries=1)
    with django_capture_on_commit_callbacks() as callbacks:
        services.job_attempt_failed(job.pk, task_id="t1", exc=RuntimeError("boom 1"))
    job.refresh_from_db()
    assert job.status == JobStatus.RETRYING and job.next_retry_at > timezone.now()
    assert job.error_code == "internal_error" and "boom 1" in job.error_message
    published = [c for c in callbacks if getattr(c, "func", None) is publish.publish_job]
    assert len(published) == 1 and published[0].args[1] > 0  # a countdown
    Job.objects.filter(pk=job.pk).update(next_retry_at=timezone.now())
    assert services.job_claim(job.pk, task_id="t2", worker="w") is not None
    services.job_attempt_failed(job.pk, task_id="t2", exc=RuntimeError("boom 2"), traceback="tb")
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
    assert "boom 2" in job.error_message and job.error_traceback == "tb"
    assert job.completed_at is not None


def test_permanent_errors_and_timeouts_do_not_retry(user):
    job = running(user)
    services.job_attempt_failed(job.pk, task_id="t1", exc=JobError("bad file", code="bad_file"))
    job.refresh_from_db()
    assert (job.status, job.error_code, job.error_message) == (
        JobStatus.FAILED,
        "bad_file",
        "bad file",
    )
    other = running(user, task_id="t9")
    services.job_attempt_failed(other.pk, task_id="t9", exc=SoftTimeLimitExceeded())
    other.refresh_from_db()
    assert (other.status, other.error_code) == (JobStatus.FAILED, "timeout")


def test_worker_lost_is_retried(user):
    job = running(user)
    services.job_attempt_failed(job.pk, task_id="t1", exc=WorkerLostError("signal 9"))
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.RETRYING, "worker_lost")


def test_failure_of_a_stale_attempt_changes_nothing(user):
    job = running(user)
    assert not services.job_attempt_failed(job.pk, task_id="other", exc=RuntimeError())
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_cancel_waiting_job_is_immediate(user):
    job = create(user)
    assert services.job_cancel(job, actor="t") == JobStatus.CANCELLED
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.completed_at


def test_cancel_running_job_sets_flag_and_progress_raises(user, settings):
    settings.JOBSITE_PROGRESS_MIN_INTERVAL = 60  # progress calls only buffer their value
    job = running(user)
    assert services.job_cancel(job, actor="api_key:x") == JobStatus.RUNNING
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested_at
    reporter = runtime.Progress(services.AttemptWrites(job.pk, "t1", 1))
    reporter(10, "x")  # buffered: nothing has told the reporter yet, so it does not raise
    reporter.flush()  # the write finds the request; the heartbeat thread calls this: no raise
    assert Job.objects.get(pk=job.pk).progress == 0  # a cancelled attempt's value is not kept
    with pytest.raises(JobCancelled):
        reporter.check()
    with pytest.raises(JobCancelled):
        reporter(20, "y")  # the job's next progress call is where it learns to stop
    services.job_attempt_failed(job.pk, task_id="t1", exc=JobCancelled("stop"))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    kinds = list(job.events.values_list("kind", "to_status"))
    assert ("cancel_requested", "") in kinds and ("transition", JobStatus.CANCELLED) in kinds


def test_cancel_finished_job_is_conflict(user):
    job = running(user)
    services.job_complete(job.pk, task_id="t1", attempt=1, result={"ok": True})
    job.refresh_from_db()
    with pytest.raises(Conflict):
        services.job_cancel(job, actor="t")


def test_restart_failed_job_gets_a_fresh_budget_and_keeps_counting(user):
    job = running(user, max_retries=0)
    services.job_attempt_failed(job.pk, task_id="t1", exc=RuntimeError("x"))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    services.job_restart(job, actor="t")
    assert (job.status, job.attempts, job.retry_base, job.error_code) == (
        JobStatus.PENDING,
        1,
        1,
        "",
    )
    claimed = services.job_claim(job.pk, task_id="t2", worker="w")
    assert claimed.attempts == 2


def test_restart_running_or_completed_is_conflict(user):
    job = running(user)
    with pytest.raises(Conflict):
        services.job_restart(job, actor="t")
    services.job_complete(job.pk, task_id="t1", attempt=1, result=None)
    job.refresh_from_db()
    with pytest.raises(Conflict):
        services.job_restart(job, actor="t")


def test_result_that_is_not_json_fails_the_job(user):
    job = running(user)
    services.job_complete(job.pk, task_id="t1", attempt=1, result={1, 2})
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "result_not_serializable")


def test_progress_calls_are_coalesced(user, settings):
    settings.JOBSITE_PROGRESS_MIN_INTERVAL = 0.2
    job = running(user)
    reporter = runtime.Progress(services.AttemptWrites(job.pk, "t1", 1))
    reporter._last_write = 0  # the first call writes at once
    with CaptureQueriesContext(connection) as queries:
        for i in range(20_000):
            reporter(i / 200, f"chunk {i}")
    writes = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert 1 <= len(writes) <= 3
    reporter.flush()
    job.refresh_from_db()
    assert job.progress == pytest.approx(99.995) and job.current_step == "chunk 19999"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("idle", [False, True], ids=["busy thread", "idle thread"])
def test_a_buffered_progress_value_is_written_by_the_heartbeat_thread(user, idle, settings):
    """A value reported right after the start is buffered; the worker's thread writes it
    within two progress intervals, whether it was ticking (a busy worker) or asleep for a
    heartbeat interval (then the progress call wakes it)."""
    settings.JOBSITE_HEARTBEAT_INTERVAL = 3.0
    job = running(user)
    beat = runtime._heartbeat_thread()
    if idle:
        beat.busy_until = 0.0

        def asleep() -> bool:
            """Past its current tick, in a heartbeat-interval sleep (inf: awake)."""
            return 1.0 < beat.wakes_at - time.monotonic() < 4.0

        wait_for(asleep, 2, "the thread to doze off")
    reporter = runtime.Progress(services.AttemptWrites(job.pk, "t1", 1))
    with runtime.activate(reporter):
        reporter(42, "buffered")
        assert Job.objects.get(pk=job.pk).progress == 0  # not written by the call itself
        started = time.monotonic()
        wait_for(lambda: Job.objects.get(pk=job.pk).progress == 42, 2, "the thread's write")
        assert time.monotonic() - started < 0.5


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_gives_its_connection_back_once_idle(user, settings):
    """Each pool process's heartbeat thread opens a database connection of its own; an idle
    worker must not keep it (and a test run must not keep the test database open)."""
    if connection.vendor != "postgresql":
        pytest.skip("counts connections to the PostgreSQL server")
    port = int(connection.settings_dict["PORT"] or 5432)

    def open_connections() -> int:
        return sum(
            1
            for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
        )

    settings.JOBSITE_HEARTBEAT_INTERVAL = 0.3
    job = running(user)
    reporter = runtime.Progress(services.AttemptWrites(job.pk, "t1", 1))
    with runtime.activate(reporter):
        reporter(42, "buffered")  # written by the thread, on its own connection
        wait_for(lambda: Job.objects.get(pk=job.pk).progress == 42, 2, "the thread's write")
        busy = open_connections()
    wait_for(lambda: open_connections() == busy - 1, 5, "the thread's connection to close")
    # The test's own connection is still open. (Not its status: once an integration test
    # has started the session's beat, its reaper may retry the job, idle past the timeout.)
    assert Job.objects.filter(pk=job.pk).exists()


def test_progress_after_the_attempt_was_taken_away_raises_attempt_lost(user):
    job = running(user)
    services.job_attempt_failed(job.pk, task_id="t1", exc=JobError("reaped", retryable=True))
    reporter = runtime.Progress(services.AttemptWrites(job.pk, "t1", 1))
    reporter.flush()
    with pytest.raises(AttemptLost):
        reporter.check()


def test_progress_outside_a_job_is_a_no_op(user):
    job = running(user)  # a running job that this code is not part of
    with CaptureQueriesContext(connection) as queries:
        runtime.progress(50, "nothing to report to")
    assert queries.captured_queries == []
    row = Job.objects.get(pk=job.pk)
    assert (row.progress, row.current_step) == (0, "")


def test_an_attempt_asked_to_cancel_keeps_its_heartbeat_until_it_stops(user):
    job = running(user)
    services.job_cancel(job, actor="t")
    reporter = runtime.Progress(services.AttemptWrites(job.pk, "t1", 1))
    reporter.flush()
    with pytest.raises(JobCancelled):
        reporter.check()
    old = timezone.now() - timedelta(minutes=1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
    reporter.flush()  # the heartbeat thread's call while the job winds down
    assert Job.objects.get(pk=job.pk).heartbeat_at > old


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_claim_and_completion_look_the_row_up_by_primary_key_after_a_burst(user):
    """Statistics from before a burst (all jobs finished) say the partial index of pending
    jobs is empty; a claim planned onto it would walk the whole backlog to find its row."""
    for _ in range(300):
        create(user)
    Job.objects.update(status=JobStatus.COMPLETED)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    job = [create(user) for _ in range(300)][150]
    values = {"id": job.pk, "now": timezone.now(), "task_id": "a", "actor": "w", "reason": "r"}
    statements = [
        (
            writes.CLAIM.sql(["id", "attempts"]),
            writes.CLAIM.sql_params(
                {**values, "due": None, "worker": "w", "from": JobStatus.PENDING}, "default"
            ),
        ),
        (
            writes.COMPLETE.sql(["id"]),
            writes.COMPLETE.sql_params(
                {**values, "result": None, "attempt": 1, "from": JobStatus.RUNNING}, "default"
            ),
        ),
    ]
    for statement, params in statements:
        with connection.cursor() as cursor:  # client-side binding: the custom plan
            cursor.execute(f"EXPLAIN {statement}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Index Scan using jobs_job_pkey on jobs_job" in plan, plan


def test_claim_returns_the_row_and_logs_the_attempt_number_it_wrote(user):
    job = create(user, max_retries=2)
    first = services.job_claim(job.pk, task_id="a", worker="w:1")
    assert (first.pk, first.type, first.attempts, first.params["duration_s"]) == (
        job.pk,
        "echo",
        1,
        0,
    )
    services.job_attempt_failed(job.pk, task_id="a", exc=RuntimeError("x"))
    Job.objects.filter(pk=job.pk).update(next_retry_at=timezone.now())
    second = services.job_claim(job.pk, task_id="b", worker="w:2")
    assert second.attempts == 2
    claims = job.events.filter(to_status=JobStatus.RUNNING).order_by("id")
    assert [(e.from_status, e.attempt) for e in claims] == [
        (JobStatus.PENDING, 1),
        (JobStatus.RETRYING, 2),
    ]
    row = Job.objects.get(pk=job.pk)
    assert row.started_at is not None and row.celery_task_id == "b" and row.worker == "w:2"
