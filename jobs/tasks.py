"""The Celery entry points: thin, named for good (a rename strands queued messages)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from jobs import maintenance, runner, tally
from jobs.errors import JobError
from jobs.publish import DELIVER_TASK
from jobs.webhooks import deliveries


# JobError is a job failing as designed (bad input, cancelled): recorded on the row,
# not logged by Celery as an unexpected error with a traceback. send_events: Celery's task
# events (Flower's task list and counts) cost the worker's main loop three Redis round trips
# per job; JOBSITE_JOB_TASK_EVENTS=0 leaves them to the job's own event log and live updates.
@shared_task(
    name="jobs.run",
    bind=True,
    ignore_result=True,
    throws=(JobError,),
    send_events=settings.JOBSITE_JOB_TASK_EVENTS,
)
def run_job(self: Any, job_id: str) -> Any:
    return runner.run_attempt(self.request, job_id)


@shared_task(name="jobs.maintenance.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    return maintenance.sweep()


# The metrics' counts (jobs/tally.py): a run after another has nothing to do but a query.
@shared_task(name="jobs.tally", ignore_result=True)
def roll_up_tally() -> int:
    return tally.roll_up()


# The daily purge runs as a job (jobs/schedules.py). The old name still starts it, for a
# message queued before this release or a schedule row not migrated yet.
@shared_task(name="jobs.schedule.purge", ignore_result=True)
def schedule_purge() -> str | None:
    from jobs import schedules

    job = schedules.start("purge", {})
    return str(job.pk) if job else None


@shared_task(name="jobs.maintenance.purge", ignore_result=True)
def purge() -> str | None:
    return schedule_purge()


# One POST per message; a lost or killed one is found by the sweeper from its row.
@shared_task(name=DELIVER_TASK, ignore_result=True)
def deliver_webhook(message_id: str) -> str:
    return deliveries.deliver(message_id)
