"""What celery-beat starts on a schedule, as jobs: operators see a scheduled purge or
consolidation in the job list and the admin, with its progress, result and events, like
any other job. Each is system-owned (no owner: no client sees it) and is not started
again while the last one of the same kind is still pending or running.

The schedules themselves are rows of django-celery-beat (``jobs/migrations/0008``), so
the admin shows and edits them; the sweeper and the access-count flush keep their
intervals from settings (``CELERY_BEAT_SCHEDULE``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from jobs import maintenance, services
from jobs.models import TERMINAL_STATUSES, Job
from jobs.queues import Queue
from jobs.registry import register
from jobs.runtime import Progress

ACTOR = "system:beat"


def start(
    job_type: str, params: dict[str, Any], *, same: dict[str, Any] | None = None
) -> Job | None:
    """A system-owned job of ``job_type``, unless one (with the ``same`` params, if
    given) is still going; None then."""
    with transaction.atomic():
        going = Job.objects.filter(owner=None, type=job_type).exclude(status__in=TERMINAL_STATUSES)
        for name, value in (same or {}).items():
            going = going.filter(**{f"params__{name}": value})
        if going.exists():
            return None
        job, _ = services.job_create(
            owner=None, job_type=job_type, params=params, actor=ACTOR, public_only=False
        )
    return job


@register("purge", queue=Queue.MAINTENANCE, public=False, max_retries=2, time_limit=3600)
def purge(params: dict[str, Any], progress: Progress) -> dict[str, int]:
    """Delete the records of jobs past their retention, keeping their outcomes."""
    progress(0, "purging")

    def report(done: int) -> None:  # a cancel stops it between batches
        progress(50, f"{done:,} job records purged")

    return maintenance.purge(progress=report)
