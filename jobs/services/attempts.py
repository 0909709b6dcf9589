"""The worker's side of a job: claim an attempt, report progress and heartbeats, and end
it completed, retrying, failed or cancelled.

Every write here is conditional on the attempt still owning the row (its Celery task
id, and ``running``): a stale attempt, a redelivered message or a late signal loses
cleanly and writes nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from jobs import publish, writes
from jobs.dbretry import outlasts_db_blips
from jobs.errors import AttemptLost, JobCancelled, JobError
from jobs.live.notify import notify
from jobs.models import Job, JobEvent, JobStatus
from jobs.services.failures import classify, retry_delay
from jobs.services.moves import ENDED_FIELDS, announce, note, transition
from jobsite import logs

log = logging.getLogger("jobs.services")

# What a claimed attempt reads from its row (anything else loads on demand).
CLAIM_FIELDS = (
    "type",
    "params",
    "status",
    "attempts",
    "max_retries",
    "retry_base",
    "input_file",
    "time_limit",
    "queue",
    "priority",
    "celery_task_id",
    "owner",
)


@outlasts_db_blips
def job_claim(job_id: Any, *, task_id: str, worker: str) -> Job | None:
    """Take a job for one attempt, or return None when this message must not run it
    (already running elsewhere, finished, cancelled, not yet due, or gone).

    One statement: the claim, its event and the row the attempt needs. A pending job is
    the common case; a retrying one must also be due.
    """
    now = timezone.now()
    due_by = now + timedelta(seconds=0.5)
    actor = f"system:{worker}"[:200]
    for source, due in ((JobStatus.PENDING, None), (JobStatus.RETRYING, due_by)):
        job = writes.claim(
            job_id,
            source,
            fields=CLAIM_FIELDS,
            now=now,
            due=due,
            task_id=task_id,
            worker=worker[:255],
            actor=actor,
            reason="attempt started",
        )
        if job is not None:
            written = {"attempts": job.attempts, "progress": 0.0, "current_step": ""}
            with logs.job_context(job):
                announce(job_id, source, JobStatus.RUNNING, "attempt started", actor, written)
            return job
    log.info(
        "Job %s is not claimable (running, finished, cancelled, not due or gone): "
        "message %s skipped",
        job_id,
        task_id,
    )
    return None


def _attempt(job_id: Any, task_id: str) -> QuerySet[Job]:
    """The row, if this attempt still owns it."""
    return Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, celery_task_id=task_id)


def job_record_progress(
    job_id: Any, task_id: str, percent: float, step: str | None, reported_at: float | None = None
) -> bool:
    """One coalesced progress write (also a heartbeat). False: this attempt must stop.

    ``reported_at`` (epoch seconds) is when the job reported this value: the live event
    carries it, so a watcher's delay counts from the report, coalescing included.
    """
    now = timezone.now()
    values: dict[str, Any] = {"progress": percent, "heartbeat_at": now, "updated_at": now}
    if step is not None:
        values["current_step"] = step[:255]
    written = _attempt(job_id, task_id).filter(cancel_requested_at__isnull=True).update(**values)
    if written:
        notify(
            job_id,
            at=reported_at,
            status=JobStatus.RUNNING,
            progress=percent,
            current_step=values.get("current_step"),
        )
    return written == 1


def job_heartbeat(job_id: Any, task_id: str) -> bool:
    """Prove the attempt's worker is alive. False: this attempt must stop."""
    return (
        _attempt(job_id, task_id)
        .filter(cancel_requested_at__isnull=True)
        .update(heartbeat_at=timezone.now())
        == 1
    )


def job_checkpoint(job_id: Any, task_id: str, state: Any) -> bool:
    """Record where this attempt got to, in the caller's transaction (which holds the
    step's writes): both commit, or neither. False: this attempt must stop, and the
    caller rolls its step back."""
    return (
        _attempt(job_id, task_id)
        .filter(cancel_requested_at__isnull=True)
        .update(checkpoint=state, heartbeat_at=timezone.now())
        == 1
    )


def job_saved_checkpoint(job_id: Any) -> Any:
    return Job.objects.filter(pk=job_id).values_list("checkpoint", flat=True).first()


def job_keep_alive(job_id: Any, task_id: str) -> bool:
    """The heartbeat of an attempt that was asked to stop: still alive until it does (or
    until the cancel grace runs out), so the reaper must not take it for dead."""
    return _attempt(job_id, task_id).update(heartbeat_at=timezone.now()) == 1


def attempt_stop_reason(job_id: Any, task_id: str) -> JobError:
    """Why a progress or heartbeat write found the attempt no longer running."""
    if job_keep_alive(job_id, task_id):
        return JobCancelled("The job was cancelled")
    status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
    return AttemptLost(f"This attempt no longer owns the job (it is {status or 'deleted'})")


def job_note(job_id: Any, *, actor: str, message: str, attempt: int = 0, data: Any = None) -> None:
    """A notable step, in the job's event log."""
    note(job_id, kind=JobEvent.Kind.NOTE, actor=actor, reason=message, attempt=attempt, data=data)


@dataclass(frozen=True)
class AttemptWrites:
    """What a running attempt's reporter (``jobs.runtime.Progress``) writes through,
    bound to the attempt: the runner hands it over, so the runtime knows no services."""

    job_id: Any
    task_id: str
    attempt: int

    def progress(self, percent: float, step: str | None, reported_at: float) -> bool:
        return job_record_progress(self.job_id, self.task_id, percent, step, reported_at)

    def heartbeat(self) -> bool:
        return job_heartbeat(self.job_id, self.task_id)

    def keep_alive(self) -> bool:
        return job_keep_alive(self.job_id, self.task_id)

    def checkpoint(self, state: Any) -> bool:
        return job_checkpoint(self.job_id, self.task_id, state)

    def saved_checkpoint(self) -> Any:
        return job_saved_checkpoint(self.job_id)

    def stop_reason(self) -> JobError:
        return attempt_stop_reason(self.job_id, self.task_id)

    def note(self, message: str, data: Any = None) -> None:
        job_note(
            self.job_id, actor="system:worker", message=message, attempt=self.attempt, data=data
        )


@outlasts_db_blips
def job_complete(job_id: Any, *, task_id: str, attempt: int, result: Any) -> bool:
    try:
        text = json.dumps(result, allow_nan=False, ensure_ascii=False)
        size = len(text.encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError) as exc:
        return job_attempt_failed(
            job_id,
            task_id=task_id,
            exc=JobError(f"The job's result is not JSON: {exc}", code="result_not_serializable"),
        )
    if size > settings.JOBSITE_MAX_RESULT_BYTES:
        # Every read of the job carries its result: a result this large would make each one
        # that big. Its outputs belong where they can be paged (memories, files).
        limit = settings.JOBSITE_MAX_RESULT_BYTES
        message = (
            f"The job's result is {size} bytes as JSON; results are limited to {limit} "
            "(JOBSITE_MAX_RESULT_BYTES): return a summary, and store large outputs as "
            "memories or files"
        )
        return job_attempt_failed(
            job_id, task_id=task_id, exc=JobError(message, code="result_too_large")
        )
    moved = writes.complete(
        job_id,
        fields=ENDED_FIELDS,
        now=timezone.now(),
        task_id=task_id,
        result=result,
        attempt=attempt,
        actor="system:worker",
        reason="completed",
    )
    if moved is None:
        return False
    written = {"result": result, "progress": 100.0, "error_code": ""}
    announce(
        job_id,
        JobStatus.RUNNING,
        JobStatus.COMPLETED,
        "completed",
        "system:worker",
        written,
        ended=moved,
    )
    return True


@outlasts_db_blips
def job_attempt_failed(
    job_id: Any,
    *,
    task_id: str,
    exc: BaseException,
    traceback: str = "",
    actor: str = "system:worker",
) -> bool:
    """An attempt ended in an exception (or its worker died): retry, fail or cancel."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING or job.celery_task_id != task_id:
        return False  # a stale attempt: the row has moved on without it
    # Also where no attempt's context is: the main worker process (a pool process died),
    # and the sweeper's reaper.
    with logs.job_context(job):
        return _end_attempt(job, task_id=task_id, exc=exc, traceback=traceback, actor=actor)


def _end_attempt(job: Job, *, task_id: str, exc: BaseException, traceback: str, actor: str) -> bool:
    failure = classify(exc, time_limit=job.time_limit)
    now = timezone.now()
    error = {
        "error_code": failure.code,
        "error_message": failure.message,
        "error_traceback": traceback[-20000:],
        "heartbeat_at": None,
    }
    attempt_of = f"attempt {job.attempts}"
    owned = Q(celery_task_id=task_id)
    if job.cancel_requested_at is not None:
        return transition(
            job.pk,
            JobStatus.RUNNING,
            JobStatus.CANCELLED,
            where=owned,
            fields={"completed_at": now, "heartbeat_at": None},
            actor=actor,
            reason=f"stopped after a cancel request ({failure.code})",
            attempt=job.attempts,
        )
    if failure.retryable and job.attempts_left > 0:
        delay = retry_delay(
            job.attempts,
            base=settings.JOBSITE_RETRY_BACKOFF_BASE,
            cap=settings.JOBSITE_RETRY_BACKOFF_MAX,
        )
        due = now + timedelta(seconds=delay)
        countdown = delay if delay <= settings.JOBSITE_RETRY_COUNTDOWN_MAX else None
        with transaction.atomic():
            moved = transition(
                job.pk,
                JobStatus.RUNNING,
                JobStatus.RETRYING,
                where=owned,
                fields={**error, "next_retry_at": due, "dispatched_at": due if countdown else None},
                actor=actor,
                reason=f"{attempt_of} failed ({failure.code}): {failure.message}; "
                f"retry in {delay:.1f} s",
                attempt=job.attempts,
            )
            if moved and countdown is not None:
                publish.publish_on_commit(job, countdown=countdown)
        return moved
    why = "no retries left" if failure.retryable else "not retryable"
    return transition(
        job.pk,
        JobStatus.RUNNING,
        JobStatus.FAILED,
        where=owned,
        fields={**error, "completed_at": now},
        actor=actor,
        reason=f"{attempt_of} failed ({failure.code}): {failure.message}; {why}",
        attempt=job.attempts,
    )
