"""The sweeper's writes (called by ``jobs.maintenance`` on its schedule): publish what is
due, publish again what was lost, end what would not stop."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from jobs import publish
from jobs.models import Job, JobStatus
from jobs.services.attempts import job_note
from jobs.services.moves import transition


def job_publish_due_scheduled(job: Job) -> bool:
    """A scheduled job whose time has come becomes pending and is published."""
    if not transition(
        job.pk,
        JobStatus.SCHEDULED,
        JobStatus.PENDING,
        fields={"dispatched_at": timezone.now()},
        actor="system:scheduler",
        reason="run_at reached",
    ):
        return False
    publish.publish_job(job)
    return True


def job_redispatch(job: Job, *, reason: str) -> bool:
    """Publish a pending or due retrying job again (its message was lost or never sent)."""
    marked = Job.objects.filter(
        pk=job.pk, status=job.status, dispatched_at=job.dispatched_at
    ).update(dispatched_at=timezone.now())
    if not marked:
        return False
    job_note(job.pk, actor="system:dispatcher", message=reason, attempt=job.attempts)
    publish.publish_job(job)
    return True


def job_terminate_cancelled(job: Job) -> bool:
    """A running job that ignored its cancel request past the grace period."""
    return transition(
        job.pk,
        JobStatus.RUNNING,
        JobStatus.CANCELLED,
        where=Q(celery_task_id=job.celery_task_id),
        fields={"completed_at": timezone.now(), "heartbeat_at": None},
        actor="system:sweeper",
        reason="did not stop within the cancel grace period; terminated",
        attempt=job.attempts,
    )
