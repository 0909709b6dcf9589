"""The sweeper and the purge: how nothing is lost and nothing stays forever.

The sweeper runs every ``JOBSITE_SWEEP_INTERVAL`` seconds (celery-beat) and is safe to
run twice at once: every change it makes is a compare-and-swap on the Job row.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from jobs import services, tally
from jobs.broker import queue_depths
from jobs.errors import JobError
from jobs.models import (
    TERMINAL_STATUSES,
    Batch,
    Delivery,
    DeliveryAttempt,
    Job,
    JobArchive,
    JobEvent,
    JobStatus,
)
from jobs.publish import HARD_LIMIT_GRACE
from jobs.services.batches import close_missed
from jobs.webhooks import deliveries
from jobsite.celery import app

log = logging.getLogger(__name__)

BATCH = 500


def sweep() -> dict[str, int]:
    return {
        "scheduled": publish_due_scheduled(),
        "retries": publish_due_retries(),
        "redispatched": redispatch_lost_pending(),
        "reaped": reap_lost_workers(),
        "overdue": fail_overdue_attempts(),
        "terminated": terminate_ignored_cancels(),
        "deliveries_missing": deliveries.create_missing(),
        "deliveries_recovered": deliveries.recover_leases(),
        "deliveries_published": deliveries.publish_due(),
        "batches_closed": close_missed(),
    }


def publish_due_scheduled() -> int:
    due = Job.objects.filter(status=JobStatus.SCHEDULED, run_at__lte=timezone.now()).order_by(
        "run_at"
    )
    return sum(services.job_publish_due_scheduled(job) for job in due[:BATCH])


def publish_due_retries() -> int:
    """Retries too far off for a broker countdown, and countdowns whose message was lost."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOBSITE_DISPATCH_AFTER)
    due = Job.objects.filter(status=JobStatus.RETRYING, next_retry_at__lte=now).filter(
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale)
    )
    return sum(
        services.job_redispatch(job, reason="retry due: published by the sweeper")
        for job in due.order_by("next_retry_at")[:BATCH]
    )


def redispatch_lost_pending() -> int:
    """Re-publish pending jobs whose message is gone (broker down at create time, Redis
    restarted without persistence, crash between commit and publish).

    A job pending for a while may simply be queued behind others, so per queue only as
    many jobs are re-published as the broker holds fewer messages than there are pending
    jobs; a duplicate would be harmless (the claim) but costs a claim.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.JOBSITE_DISPATCH_AFTER)
    stale = Job.objects.filter(status=JobStatus.PENDING).filter(
        Q(dispatched_at__lt=cutoff) | Q(dispatched_at__isnull=True, created_at__lt=cutoff)
    )
    by_queue: dict[str, list[Job]] = defaultdict(list)
    for job in stale.order_by("-priority", "created_at")[:BATCH]:
        by_queue[job.queue].append(job)
    if not by_queue:
        return 0
    depths = queue_depths(list(by_queue))
    if depths is None:
        return 0  # the broker is down: publishing would fail too
    count = 0
    for queue, jobs in by_queue.items():
        pending = Job.objects.filter(status=JobStatus.PENDING, queue=queue).count()
        missing = pending - depths.get(queue, 0)
        for job in jobs[: max(0, missing)]:
            count += services.job_redispatch(
                job, reason="re-published: its message was not in the broker"
            )
    return count


def reap_lost_workers() -> int:
    """Running jobs whose worker stopped beating: retry them, or fail with worker_lost."""
    timeout = settings.JOBSITE_HEARTBEAT_TIMEOUT
    cutoff = timezone.now() - timedelta(seconds=timeout)
    lost = Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)[:BATCH]
    return sum(
        services.job_attempt_failed(
            job.pk,
            task_id=job.celery_task_id,
            exc=JobError(
                f"No heartbeat for {timeout:g} s from {job.worker}: the worker is gone",
                code="worker_lost",
                retryable=True,
            ),
            actor="system:reaper",
        )
        for job in lost
    )


def fail_overdue_attempts() -> int:
    """Running jobs still beating long past their hard time limit: the pool could not
    enforce it (solo and thread pools cannot). Fail them and kill the attempt."""
    now = timezone.now()
    grace = timedelta(seconds=HARD_LIMIT_GRACE + settings.JOBSITE_HEARTBEAT_TIMEOUT)
    # Running jobs are few (one per pool slot): the per-job deadline is checked here.
    running = Job.objects.filter(status=JobStatus.RUNNING, attempt_started_at__lt=now - grace)
    overdue = [
        job
        for job in running.only("pk", "celery_task_id", "time_limit", "attempt_started_at")
        if job.attempt_started_at + timedelta(seconds=job.time_limit) + grace < now
    ]
    count = 0
    for job in overdue:
        failed = services.job_attempt_failed(
            job.pk,
            task_id=job.celery_task_id,
            exc=JobError(f"The job exceeded its time limit of {job.time_limit} s", code="timeout"),
            actor="system:reaper",
        )
        if failed:
            count += 1
            _kill(job)
    return count


def _kill(job: Job) -> None:
    try:
        app.control.revoke(job.celery_task_id, terminate=True, signal="SIGKILL")
    except Exception as exc:  # the row is already final; the kill is best effort
        log.warning("Could not terminate job %s: %s", job.pk, exc)


def terminate_ignored_cancels() -> int:
    """Running jobs asked to cancel that did not reach a progress call within the grace."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOBSITE_CANCEL_GRACE)
    count = 0
    for job in Job.objects.filter(status=JobStatus.RUNNING, cancel_requested_at__lt=cutoff)[:BATCH]:
        if services.job_terminate_cancelled(job):
            count += 1
            _kill(job)
    return count


# Jobs per purge transaction: on PostgreSQL one statement that holds their rows' locks
# for about a tenth of a second.
PURGE_BATCH = 5_000
# What a purged job's ``JobArchive`` keeps (besides when it was archived).
ARCHIVED_FIELDS = (
    "id", "type", "owner_id", "status", "result", "error_code", "error_message", "attempts",
    "created_at", "started_at", "completed_at",
)  # fmt: skip


def purge(
    *, now=None, time_budget: float = 3000.0, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Delete the records of jobs that ended more than ``JOBSITE_RETENTION_DAYS`` ago (their
    events, uploads and webhook deliveries), keeping each one's outcome as a
    ``JobArchive``; then archives past ``JOBSITE_JOB_ARCHIVE_DAYS``. What the jobs produced
    (memories) is not theirs to delete.

    In transactions of a few thousand jobs that lock only those rows (on PostgreSQL, rows
    another transaction holds, a job being restarted, are skipped and taken next time),
    so the API keeps answering while millions go. ``progress`` gets the count after each."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.JOBSITE_RETENTION_DAYS)
    started = time.monotonic()
    deleted = 0
    files: list[str] = []
    purge_batch = _purge_batch_sql if connection.vendor == "postgresql" else _purge_batch_orm
    while time.monotonic() - started < time_budget:
        with transaction.atomic():
            removed = purge_batch(cutoff, now)
        if not removed:
            break
        files += [name for name in removed if name]
        deleted += len(removed)
        if progress is not None:
            progress(deleted)
    storage = Job._meta.get_field("input_file").storage
    for name in files:  # after the commits: a rolled-back batch keeps its files
        storage.delete(name)
    return {
        "deleted": deleted,
        "batches_deleted": purge_batches(cutoff),
        "archives_deleted": purge_archives(now),
        "metric_minutes_deleted": tally.purge_minutes(now),
    }


# PostgreSQL: one statement per batch. The archive rows are copied and every record
# deleted inside the server (a job's result never travels to Python and back), children
# first in the same statement: the foreign keys are checked at commit.
PURGE_SQL = """
WITH doomed AS (
    SELECT id FROM {job} WHERE status = ANY(%(ended)s) AND completed_at < %(cutoff)s
    ORDER BY completed_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), archived AS (
    INSERT INTO {archive} ({columns}, archived_at)
    SELECT {columns}, %(now)s FROM {job} WHERE id IN (SELECT id FROM doomed)
    ON CONFLICT (id) DO NOTHING
), attempts AS (
    DELETE FROM {attempt} WHERE delivery_id IN (
        SELECT id FROM {delivery} WHERE job_id IN (SELECT id FROM doomed))
), deliveries AS (
    DELETE FROM {delivery} WHERE job_id IN (SELECT id FROM doomed)
), events AS (
    DELETE FROM {event} WHERE job_id IN (SELECT id FROM doomed)
)
DELETE FROM {job} WHERE id IN (SELECT id FROM doomed) RETURNING input_file
"""


def _purge_batch_sql(cutoff: Any, now: Any) -> list[str]:
    """One batch on PostgreSQL: the uploads of the jobs it deleted ("" for none)."""
    tables = {
        "job": Job._meta.db_table,
        "archive": JobArchive._meta.db_table,
        "attempt": DeliveryAttempt._meta.db_table,
        "delivery": Delivery._meta.db_table,
        "event": JobEvent._meta.db_table,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            PURGE_SQL.format(**tables, columns=", ".join(ARCHIVED_FIELDS)),
            {
                "ended": list(TERMINAL_STATUSES),
                "cutoff": cutoff,
                "limit": PURGE_BATCH,
                "now": now,
            },
        )
        return [row[0] for row in cursor.fetchall()]


def _purge_batch_orm(cutoff: Any, now: Any) -> list[str]:
    """One batch elsewhere (SQLite): read, archive, delete."""
    ended = Job.objects.filter(status__in=TERMINAL_STATUSES, completed_at__lt=cutoff)
    rows = list(ended.order_by("completed_at").values(*ARCHIVED_FIELDS, "input_file")[:PURGE_BATCH])
    if not rows:
        return []
    files = [row.pop("input_file") for row in rows]
    JobArchive.objects.bulk_create(
        [JobArchive(archived_at=now, **row) for row in rows], ignore_conflicts=True
    )
    _delete_records([row["id"] for row in rows])
    return files


def _delete_records(ids: list[Any]) -> None:
    """A batch of jobs and everything that hangs off them, children first, one statement
    each (Django's delete would load every job row to cascade)."""
    DeliveryAttempt.objects.filter(delivery__job_id__in=ids).delete()
    Delivery.objects.filter(job_id__in=ids).delete()
    JobEvent.objects.filter(job_id__in=ids).delete()
    table = connection.ops.quote_name(Job._meta.db_table)
    pk = Job._meta.pk
    values = [pk.get_db_prep_value(value, connection) for value in ids]
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(values))})",  # noqa: S608
            values,
        )


def purge_archives(now) -> int:
    days = settings.JOBSITE_JOB_ARCHIVE_DAYS
    if not days:
        return 0
    deleted, _ = JobArchive.objects.filter(archived_at__lt=now - timedelta(days=days)).delete()
    return deleted


def purge_batches(cutoff) -> int:
    """Batches that ended before ``cutoff`` and have no job left (with their deliveries)."""
    has_jobs = Job.objects.filter(batch=OuterRef("pk"))
    deleted = 0
    while True:
        ended = list(
            Batch.objects.filter(completed_at__lt=cutoff)
            .filter(~Exists(has_jobs))
            .values_list("pk", flat=True)[:BATCH]
        )
        if not ended:
            return deleted
        Batch.objects.filter(pk__in=ended).delete()
        deleted += len(ended)
