"""Publishing a job's message to the broker: only ever a hint to "go and look at job X".

The Job row is the truth; a message may be lost (broker down, crash after commit) or
duplicated (re-publish, Redis redelivery) and the claim in ``jobs.services`` makes both
harmless. Each publication gets a fresh task id, so a revoke of one attempt can never
swallow the message of a later one.
"""

from __future__ import annotations

import logging
import uuid
from functools import partial
from typing import TYPE_CHECKING

from django.db import transaction

from jobsite.celery import app

if TYPE_CHECKING:
    from jobs.models import Job

log = logging.getLogger(__name__)

RUN_TASK = "jobs.run"
# Seconds between the soft time limit (raised inside the job) and the hard kill.
HARD_LIMIT_GRACE = 10


def broker_priority(priority: int) -> int:
    """Our 0..9 (9 most urgent) to Celery's Redis priority (0 first)."""
    return 9 - max(0, min(9, priority))


def publish(
    job_id: object,
    *,
    job_type: str,
    queue: str,
    priority: int,
    time_limit: int,
    countdown: float | None = None,
) -> bool:
    """Send one ``jobs.run`` message; on broker trouble log and return False (the sweeper
    re-publishes from the row)."""
    try:
        app.send_task(
            RUN_TASK,
            args=[str(job_id)],
            task_id=str(uuid.uuid4()),
            # What Flower and worker logs show as the task's name: the job's type.
            shadow=f"{RUN_TASK}:{job_type}",
            queue=queue,
            priority=broker_priority(priority),
            soft_time_limit=time_limit,
            time_limit=time_limit + HARD_LIMIT_GRACE,
            countdown=countdown,
        )
    except Exception as exc:  # any broker/transport failure: the row stays, the sweeper retries
        log.warning("Could not publish job %s (%s); the sweeper will re-publish it", job_id, exc)
        return False
    return True


def publish_job(job: Job, countdown: float | None = None) -> bool:
    return publish(
        job.pk,
        job_type=job.type,
        queue=job.queue,
        priority=job.priority,
        time_limit=job.time_limit,
        countdown=countdown,
    )


def publish_on_commit(job: Job, countdown: float | None = None) -> None:
    """Publish once the transaction that wrote the row commits, never before."""
    transaction.on_commit(partial(publish_job, job, countdown))
