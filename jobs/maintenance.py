"""The sweeper and the purge: how nothing is lost and nothing stays forever.

The sweeper runs every ``JOBSITE_SWEEP_INTERVAL`` seconds (celery-beat) and is safe to
run twice at once: every change it makes is a compare-and-swap on the Job row.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from jobs import services
from jobs.broker import queue_depths
from jobs.errors import JobError
from jobs.models import TERMINAL_STATUSES, Batch, Job, JobStatus
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


def purge(*, now=None, time_budget: float = 300.0) -> dict[str, int]:
    """Delete finished jobs (and their events and uploads) past the retention period, in
    batches. What they produced (memories) is not theirs to delete."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.JOBSITE_RETENTION_DAYS)
    started = time.monotonic()
    deleted = 0
    while time.monotonic() - started < time_budget:
        batch = list(
            Job.objects.filter(status__in=TERMINAL_STATUSES, completed_at__lt=cutoff)
            .order_by("completed_at")
            .values_list("pk", "input_file")[:BATCH]
        )
        if not batch:
            break
        for _, name in batch:
            if name:
                Job._meta.get_field("input_file").storage.delete(name)
        Job.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
        deleted += len(batch)
    return {"deleted": deleted, "batches_deleted": purge_batches(cutoff)}


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
