"""What the transition table drives, seen through the real writes: a claim, completion,
failure, cancel or restart the table does not allow is refused by the write itself, and a
refused write leaves the row and its event log exactly as they were.

Every job here is brought to its status by the services (``jobs.services``), and every
write goes through them too, so each test runs the path of the database it is run on: the
ORM on SQLite, and on PostgreSQL the hand-written claim and completion of
``jobs.writes`` (``make test`` runs both).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs import publish, services
from jobs.errors import Conflict, JobError
from jobs.models import Job, JobEvent, JobStatus
from jobs.publish import publish_job
from jobs.services.moves import transition

pytestmark = pytest.mark.django_db

WAITING = [JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.RETRYING]
TERMINAL = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]


def job_in(user, status: str) -> Job:
    """A job the services brought to ``status``; its one attempt (if any) is task "t1"."""
    if status == JobStatus.SCHEDULED:
        job, _ = services.job_create(
            owner=user,
            job_type="echo",
            params={},
            actor="test",
            run_at=timezone.now() + timedelta(hours=1),
        )
        return job
    job, _ = services.job_create(
        owner=user, job_type="echo", params={}, actor="test", max_retries=1
    )
    if status != JobStatus.PENDING:
        assert services.job_claim(job.pk, task_id="t1", worker="w:1") is not None
        if status == JobStatus.CANCELLED:  # the sweeper ends an attempt that ignored the cancel
            services.job_cancel(job, actor="test")
            job.refresh_from_db()
            services.job_terminate_cancelled(job)
        elif status == JobStatus.COMPLETED:
            services.job_complete(job.pk, task_id="t1", attempt=1, result={"ok": True})
        elif status == JobStatus.RETRYING:
            services.job_attempt_failed(job.pk, task_id="t1", exc=RuntimeError("transient"))
        elif status == JobStatus.FAILED:
            services.job_attempt_failed(job.pk, task_id="t1", exc=JobError("bad", code="bad"))
    job.refresh_from_db()
    assert job.status == status
    return job


def due_now(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(next_retry_at=timezone.now())


def snapshot(job_id: Any) -> tuple[dict, list[dict]]:
    """The row and its event log, to show that a refused write changed neither."""
    row = Job.objects.filter(pk=job_id).values().get()
    events = list(JobEvent.objects.filter(job_id=job_id).order_by("id").values())
    return row, events


def last_event(job_id: Any) -> tuple[str, str, str]:
    event = JobEvent.objects.filter(job_id=job_id).order_by("id").last()
    return event.kind, event.from_status, event.to_status


# --- the claim: pending -> running, retrying -> running, nothing else -------------------


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RETRYING])
def test_a_pending_or_due_retrying_job_is_claimed(user, status):
    job = job_in(user, status)
    due_now(job)
    claimed = services.job_claim(job.pk, task_id="t2", worker="w:2")
    assert claimed is not None and claimed.attempts == job.attempts + 1
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.celery_task_id, row.attempts) == (
        JobStatus.RUNNING,
        "t2",
        job.attempts + 1,
    )
    assert last_event(job.pk) == (JobEvent.Kind.TRANSITION, status, JobStatus.RUNNING)


@pytest.mark.parametrize("status", [JobStatus.SCHEDULED, JobStatus.RUNNING, *TERMINAL])
def test_a_claim_of_a_job_that_is_not_waiting_to_run_is_refused_and_writes_nothing(user, status):
    job = job_in(user, status)
    due_now(job)  # so only the status can refuse it
    before = snapshot(job.pk)
    assert services.job_claim(job.pk, task_id="late", worker="w:late") is None
    assert snapshot(job.pk) == before


def test_a_redelivered_message_does_not_take_a_completed_job_back_to_running(user):
    job = job_in(user, JobStatus.COMPLETED)
    before = snapshot(job.pk)
    # The same message again (a redelivery after the ack was lost): same task id.
    assert services.job_claim(job.pk, task_id="t1", worker="w:1") is None
    row, events = snapshot(job.pk)
    assert (row["status"], row["result"], row["attempts"]) == (JobStatus.COMPLETED, {"ok": True}, 1)
    assert (row, events) == before


def test_a_retrying_job_is_not_claimed_before_it_is_due(user):
    job = job_in(user, JobStatus.RETRYING)
    Job.objects.filter(pk=job.pk).update(next_retry_at=timezone.now() + timedelta(minutes=5))
    before = snapshot(job.pk)
    assert services.job_claim(job.pk, task_id="early", worker="w:2") is None
    assert snapshot(job.pk) == before


# --- the attempt's own writes: only the running attempt may end its job ----------------


def test_the_running_attempt_completes_its_job(user):
    job = job_in(user, JobStatus.RUNNING)
    assert services.job_complete(job.pk, task_id="t1", attempt=1, result=[1])
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.result, row.progress) == (JobStatus.COMPLETED, [1], 100.0)
    assert last_event(job.pk) == (JobEvent.Kind.TRANSITION, JobStatus.RUNNING, JobStatus.COMPLETED)


@pytest.mark.parametrize("status", [JobStatus.RETRYING, *TERMINAL])
def test_a_late_completion_of_the_attempt_is_refused_and_writes_nothing(user, status):
    job = job_in(user, status)
    before = snapshot(job.pk)
    assert not services.job_complete(job.pk, task_id="t1", attempt=1, result="late")
    assert snapshot(job.pk) == before


@pytest.mark.parametrize("status", [JobStatus.RETRYING, *TERMINAL])
def test_a_late_failure_of_the_attempt_is_refused_and_writes_nothing(user, status):
    job = job_in(user, status)
    before = snapshot(job.pk)
    assert not services.job_attempt_failed(job.pk, task_id="t1", exc=RuntimeError("late"))
    assert snapshot(job.pk) == before


def test_a_stale_attempt_cannot_complete_the_job_another_attempt_runs(user):
    job = job_in(user, JobStatus.RETRYING)
    due_now(job)
    assert services.job_claim(job.pk, task_id="t2", worker="w:2") is not None
    before = snapshot(job.pk)
    assert not services.job_complete(job.pk, task_id="t1", attempt=1, result="stale")
    assert snapshot(job.pk) == before


# --- cancel ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", WAITING)
def test_cancel_of_a_waiting_job_is_immediate(user, status):
    job = job_in(user, status)
    assert services.job_cancel(job, actor="test") == JobStatus.CANCELLED
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert last_event(job.pk) == (JobEvent.Kind.TRANSITION, status, JobStatus.CANCELLED)
    # A claim of its (already published) message now finds nothing to run.
    assert services.job_claim(job.pk, task_id="t9", worker="w:9") is None


def test_cancel_of_a_running_job_asks_it_to_stop_and_leaves_it_running(user):
    job = job_in(user, JobStatus.RUNNING)
    assert services.job_cancel(job, actor="test") == JobStatus.RUNNING
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.RUNNING and row.cancel_requested_at is not None
    assert last_event(job.pk) == (JobEvent.Kind.CANCEL_REQUESTED, "", "")


@pytest.mark.parametrize("status", TERMINAL)
def test_cancel_of_a_finished_job_is_a_conflict_and_writes_nothing(user, status):
    job = job_in(user, status)
    before = snapshot(job.pk)
    with pytest.raises(Conflict) as err:
        services.job_cancel(job, actor="test")
    assert err.value.code == "job_not_cancellable"
    assert snapshot(job.pk) == before


def test_a_cancel_that_races_a_claim_asks_the_new_attempt_to_stop(user):
    job = job_in(user, JobStatus.PENDING)  # the canceller read it pending...
    assert services.job_claim(job.pk, task_id="t1", worker="w:1") is not None  # ...then a claim
    assert services.job_cancel(job, actor="test") == JobStatus.RUNNING
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.RUNNING and row.cancel_requested_at is not None
    kinds = list(JobEvent.objects.filter(job_id=job.pk).values_list("kind", "to_status"))
    assert (JobEvent.Kind.TRANSITION, JobStatus.CANCELLED) not in kinds


# --- restart --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
def test_restart_of_a_failed_or_cancelled_job_makes_it_pending_and_publishes_it(
    user, status, django_capture_on_commit_callbacks
):
    job = job_in(user, status)
    with django_capture_on_commit_callbacks() as callbacks:
        services.job_restart(job, actor="test")
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.error_code, row.completed_at) == (JobStatus.PENDING, "", None)
    assert last_event(job.pk) == (JobEvent.Kind.TRANSITION, status, JobStatus.PENDING)
    published = [c.args[0].pk for c in callbacks if getattr(c, "func", None) is publish_job]
    assert published == [job.pk]
    assert services.job_claim(job.pk, task_id="t2", worker="w:2") is not None


@pytest.mark.parametrize(
    "status",
    [
        JobStatus.PENDING,
        JobStatus.SCHEDULED,
        JobStatus.RUNNING,
        JobStatus.RETRYING,
        JobStatus.COMPLETED,
    ],
)
def test_restart_of_any_other_job_is_a_conflict_and_writes_nothing(
    user, status, django_capture_on_commit_callbacks
):
    job = job_in(user, status)
    before = snapshot(job.pk)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(Conflict) as err:
        services.job_restart(job, actor="test")
    assert err.value.code == "job_not_restartable"
    assert snapshot(job.pk) == before
    assert callbacks == []  # nothing published


def test_a_restart_from_a_stale_read_is_a_conflict_and_writes_nothing(user):
    job = job_in(user, JobStatus.FAILED)  # the restarter read it failed...
    stale = Job.objects.get(pk=job.pk)
    services.job_restart(job, actor="someone else")  # ...someone restarted it first
    assert services.job_claim(job.pk, task_id="t2", worker="w:2") is not None
    before = snapshot(job.pk)
    with pytest.raises(Conflict) as err:
        services.job_restart(stale, actor="test")
    assert err.value.code == "job_busy"
    assert snapshot(job.pk) == before


# --- the scheduler --------------------------------------------------------------------


def test_a_scheduled_job_cancelled_before_its_time_is_not_published_when_due(user, monkeypatch):
    published = []
    monkeypatch.setattr(publish, "publish_job", published.append)
    job = job_in(user, JobStatus.SCHEDULED)
    services.job_cancel(job, actor="test")
    before = snapshot(job.pk)
    assert not services.job_publish_due_scheduled(job)
    assert snapshot(job.pk) == before and published == []


def test_a_due_scheduled_job_becomes_pending_and_is_published(user, monkeypatch):
    published = []
    monkeypatch.setattr(publish, "publish_job", published.append)
    job = job_in(user, JobStatus.SCHEDULED)
    assert services.job_publish_due_scheduled(job)
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    assert last_event(job.pk) == (JobEvent.Kind.TRANSITION, JobStatus.SCHEDULED, JobStatus.PENDING)
    assert [j.pk for j in published] == [job.pk]


# --- the one write path refuses what the table forbids --------------------------------


def test_the_write_path_refuses_a_move_the_table_forbids_even_from_the_right_status(user):
    job = job_in(user, JobStatus.COMPLETED)
    before = snapshot(job.pk)
    with pytest.raises(ValueError, match="not allowed"):
        transition(job.pk, JobStatus.COMPLETED, JobStatus.RUNNING, actor="test", reason="late")
    assert snapshot(job.pk) == before
