"""The sweeper's parts and the purge, called directly on back-dated rows."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import maintenance, publish
from jobs.models import Batch, Delivery, DeliveryAttempt, Job, JobArchive, JobEvent, JobStatus
from processing import services
from processing.models import Memory

pytestmark = pytest.mark.django_db


def make(user, **fields):
    return Job.objects.create(type="echo", owner=user, **fields)


def test_due_scheduled_jobs_become_pending(user, monkeypatch):
    published = []
    monkeypatch.setattr(
        publish, "publish_job", lambda job, countdown=None: published.append(job.pk)
    )
    due = make(user, status=JobStatus.SCHEDULED, run_at=timezone.now() - timedelta(seconds=1))
    later = make(user, status=JobStatus.SCHEDULED, run_at=timezone.now() + timedelta(hours=1))
    assert maintenance.publish_due_scheduled() == 1
    assert published == [due.pk]
    assert Job.objects.get(pk=due.pk).status == JobStatus.PENDING
    assert Job.objects.get(pk=later.pk).status == JobStatus.SCHEDULED


def test_reaper_retries_a_job_without_heartbeat_then_fails_when_out_of_attempts(user):
    stale = timezone.now() - timedelta(minutes=5)
    job = make(
        user,
        status=JobStatus.RUNNING,
        attempts=1,
        max_retries=1,
        heartbeat_at=stale,
        celery_task_id="t1",
        worker="host:1",
    )
    fresh = make(
        user, status=JobStatus.RUNNING, attempts=1, heartbeat_at=timezone.now(), celery_task_id="t2"
    )
    assert maintenance.reap_lost_workers() == 1
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.RETRYING, "worker_lost")
    assert Job.objects.get(pk=fresh.pk).status == JobStatus.RUNNING
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=2, heartbeat_at=stale)
    assert maintenance.reap_lost_workers() == 1
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "worker_lost")
    assert "the worker is gone" in job.error_message


def test_dispatcher_republishes_only_jobs_the_broker_lacks(user, monkeypatch):
    published = []
    monkeypatch.setattr(
        publish, "publish_job", lambda job, countdown=None: published.append(job.pk)
    )
    old = timezone.now() - timedelta(minutes=5)
    jobs = [make(user, status=JobStatus.PENDING, created_at=old) for _ in range(3)]
    make(user, status=JobStatus.PENDING)  # fresh: its message is surely on its way
    monkeypatch.setattr(maintenance, "queue_depths", lambda queues: {"default": 2})
    assert maintenance.redispatch_lost_pending() == 2  # 4 pending, 2 messages
    assert published == [jobs[0].pk, jobs[1].pk]
    assert JobEvent.objects.filter(job=jobs[0], kind="note").exists()
    # Just re-published: not again until DISPATCH_AFTER has passed.
    monkeypatch.setattr(maintenance, "queue_depths", lambda queues: {"default": 0})
    assert maintenance.redispatch_lost_pending() == 1
    monkeypatch.setattr(maintenance, "queue_depths", lambda queues: None)
    Job.objects.update(dispatched_at=old)
    assert maintenance.redispatch_lost_pending() == 0  # broker down: nothing to publish to


def test_due_retries_without_countdown_are_published(user, monkeypatch):
    published = []
    monkeypatch.setattr(
        publish, "publish_job", lambda job, countdown=None: published.append(job.pk)
    )
    now = timezone.now()
    due = make(user, status=JobStatus.RETRYING, next_retry_at=now - timedelta(seconds=1))
    counted = make(
        user, status=JobStatus.RETRYING, next_retry_at=now - timedelta(seconds=1), dispatched_at=now
    )
    make(user, status=JobStatus.RETRYING, next_retry_at=now + timedelta(hours=1))
    assert maintenance.publish_due_retries() == 1
    assert published == [due.pk] and counted.pk not in published


def test_cancel_ignored_past_grace_is_terminated(user, monkeypatch):
    revoked = []
    monkeypatch.setattr(
        maintenance.app.control, "revoke", lambda task_id, **kw: revoked.append((task_id, kw))
    )
    asked = timezone.now() - timedelta(minutes=1)
    job = make(
        user,
        status=JobStatus.RUNNING,
        cancel_requested_at=asked,
        celery_task_id="t1",
        heartbeat_at=timezone.now(),
    )
    assert maintenance.terminate_ignored_cancels() == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert revoked == [("t1", {"terminate": True, "signal": "SIGKILL"})]


def test_purge_deletes_old_finished_jobs_in_batches_and_keeps_their_outcomes(user, monkeypatch):
    monkeypatch.setattr(maintenance, "PURGE_BATCH", 2)
    old = timezone.now() - timedelta(days=31)
    gone = [
        make(user, status=s, completed_at=old, result={"n": i}, attempts=1)
        for i, s in enumerate((JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED))
    ]
    Job.objects.filter(pk=gone[1].pk).update(error_code="bad_input", error_message="No.")
    for job in gone:
        JobEvent.objects.create(job=job, actor="t")
    delivery = Delivery.objects.create(
        job=gone[0],
        job_completed_at=old,
        message_id="msg_1",
        event_type="job.completed",
        url="https://hooks.example.com/",
        give_up_at=old,
    )
    DeliveryAttempt.objects.create(delivery=delivery, attempt=1, status_code=200)
    kept = [
        make(user, status=JobStatus.COMPLETED, completed_at=timezone.now() - timedelta(days=29)),
        make(user, status=JobStatus.RUNNING, created_at=old),
        make(user, status=JobStatus.PENDING, created_at=old),
    ]
    collection = services.collection_create(owner=user, name="made")
    made = Memory.objects.create(
        collection=collection, job_id=gone[0].pk, source="a", text="t", content_hash="h"
    )
    counts: list[int] = []
    assert maintenance.purge(progress=counts.append) == {
        "deleted": 3,
        "batches_deleted": 0,
        "archives_deleted": 0,
        "metric_minutes_deleted": 0,
    }
    assert counts == [2, 3]  # two batches
    assert set(Job.objects.values_list("pk", flat=True)) == {j.pk for j in kept}
    assert not JobEvent.objects.filter(job_id__in=[j.pk for j in gone]).exists()
    assert not Delivery.objects.exists() and not DeliveryAttempt.objects.exists()
    archived = {a.pk: a for a in JobArchive.objects.all()}
    assert set(archived) == {j.pk for j in gone}
    failed = archived[gone[1].pk]
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "bad_input",
        "No.",
    )
    assert archived[gone[0].pk].result == {"n": 0} and archived[gone[0].pk].owner == user
    assert Memory.objects.get(pk=made.pk).job_id == gone[0].pk  # what it produced stays
    assert maintenance.purge()["deleted"] == 0  # twice is harmless


def test_archived_outcomes_are_kept_for_their_own_retention(user, settings):
    now = timezone.now()
    for days in (10, 100):
        JobArchive.objects.create(
            id=uuid.uuid4(),
            type="echo",
            owner=user,
            status="completed",
            created_at=now,
            archived_at=now - timedelta(days=days),
        )
    assert maintenance.purge()["archives_deleted"] == 0  # the default keeps them
    settings.JOBSITE_JOB_ARCHIVE_DAYS = 30
    assert maintenance.purge()["archives_deleted"] == 1
    assert JobArchive.objects.count() == 1


def test_purge_deletes_an_old_batch_once_its_jobs_are_gone(user):
    old = timezone.now() - timedelta(days=31)
    ended = Batch.objects.create(owner=user, total=1, completed_at=old)
    make(user, status=JobStatus.COMPLETED, completed_at=old, batch=ended)
    Delivery.objects.create(
        batch=ended,
        job_completed_at=old,
        message_id="msg_old",
        event_type="batch.completed",
        url="https://hooks.example.com/",
        give_up_at=old,
    )
    recent = Batch.objects.create(owner=user, total=1, completed_at=old)
    make(user, status=JobStatus.COMPLETED, completed_at=timezone.now(), batch=recent)
    assert maintenance.purge() == {
        "deleted": 1,
        "batches_deleted": 1,
        "archives_deleted": 0,
        "metric_minutes_deleted": 0,
    }
    assert list(Batch.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not Delivery.objects.exists()


def test_attempt_past_its_time_limit_is_failed_and_killed(user, monkeypatch):
    revoked = []
    monkeypatch.setattr(
        maintenance.app.control, "revoke", lambda task_id, **kw: revoked.append(task_id)
    )
    now = timezone.now()
    overdue = make(
        user,
        status=JobStatus.RUNNING,
        attempts=1,
        time_limit=60,
        celery_task_id="t1",
        heartbeat_at=now,
        attempt_started_at=now - timedelta(minutes=10),
    )
    on_time = make(
        user,
        status=JobStatus.RUNNING,
        attempts=1,
        time_limit=3600,
        celery_task_id="t2",
        heartbeat_at=now,
        attempt_started_at=now - timedelta(minutes=10),
    )
    assert maintenance.fail_overdue_attempts() == 1
    overdue.refresh_from_db()
    assert (overdue.status, overdue.error_code) == (JobStatus.FAILED, "timeout")
    assert Job.objects.get(pk=on_time.pk).status == JobStatus.RUNNING
    assert revoked == ["t1"]
