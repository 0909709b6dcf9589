"""People steering jobs: cancel and restart (from the API, the admin, a client library).

Which statuses may be cancelled or restarted is ``jobs.transitions``'s to say; these
functions carry it out against a row that may be moving under them.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.utils import timezone

from jobs import publish
from jobs.errors import Conflict
from jobs.live.notify import notify
from jobs.models import Batch, Job, JobEvent, JobStatus
from jobs.services.moves import note, transition
from jobs.transitions import WAITING, can_cancel, can_restart
from jobsite import logs


def job_cancel(job: Job, *, actor: str) -> str:
    """Cancel a waiting job at once, or ask a running one to stop at its next progress call.

    Returns the job's status afterwards (``cancelled`` or ``running``).
    """
    with logs.job_context(job):
        for _ in range(5):  # re-read and try again if a worker moved the job meanwhile
            if not can_cancel(job.status):
                raise Conflict(f"Job is already {job.status}", code="job_not_cancellable")
            now = timezone.now()
            if job.status in WAITING:
                if transition(
                    job.pk,
                    job.status,
                    JobStatus.CANCELLED,
                    fields={"completed_at": now, "cancel_requested_at": now},
                    actor=actor,
                    reason="cancelled before it ran",
                    attempt=job.attempts,
                ):
                    return JobStatus.CANCELLED
            else:  # running: ask it to stop
                if job.cancel_requested_at is not None:
                    return JobStatus.RUNNING
                with transaction.atomic():
                    asked = Job.objects.filter(
                        pk=job.pk, status=JobStatus.RUNNING, cancel_requested_at__isnull=True
                    ).update(cancel_requested_at=now, updated_at=now)
                    if asked:
                        transaction.on_commit(partial(notify, job.pk, cancel_requested=True))
                        note(
                            job.pk,
                            kind=JobEvent.Kind.CANCEL_REQUESTED,
                            actor=actor,
                            reason="cancel requested; the job stops at its next progress call",
                            attempt=job.attempts,
                        )
                if asked:
                    return JobStatus.RUNNING
            job.refresh_from_db()
        raise Conflict("Job is changing too fast to cancel; try again", code="job_busy")


def job_restart(job: Job, *, actor: str) -> None:
    """Run a failed or cancelled job again, under the same id, as a fresh run of attempts."""
    with logs.job_context(job):
        if not can_restart(job.status):
            raise Conflict(
                f"Only failed or cancelled jobs can be restarted; this one is {job.status}",
                code="job_not_restartable",
            )
        now = timezone.now()
        with transaction.atomic():
            moved = transition(
                job.pk,
                job.status,
                JobStatus.PENDING,
                fields={
                    "retry_base": job.attempts,
                    "progress": 0.0,
                    "current_step": "",
                    "result": None,
                    "error_code": "",
                    "error_message": "",
                    "error_traceback": "",
                    "started_at": None,
                    "completed_at": None,
                    "next_retry_at": None,
                    "cancel_requested_at": None,
                    "celery_task_id": "",
                    "dispatched_at": now,
                },
                actor=actor,
                reason=f"restarted after {job.attempts} attempt(s) ended {job.status}",
                attempt=job.attempts,
            )
            if not moved:
                raise Conflict("The job changed while restarting; try again", code="job_busy")
            if job.batch_id is not None:
                Batch.objects.filter(pk=job.batch_id, completed_at__isnull=False).update(
                    completed_at=None
                )  # its batch runs again, and will end (and be told of) anew
            publish.publish_on_commit(job)
        job.refresh_from_db()
