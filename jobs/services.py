"""Every write to a Job: create, claim, progress, complete, fail, retry, cancel, restart.

Each status change is a compare-and-swap: ``UPDATE ... WHERE id = %s AND status =
<the status we saw>`` plus, where it matters, the Celery task id of the attempt, and
the event is written in the same transaction. ``jobs.transitions`` says which changes
are allowed; nothing else writes ``Job.status``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs import registry, writes
from jobs.dbretry import outlasts_db_blips
from jobs.errors import (
    AttemptLost,
    Conflict,
    IdempotencyMismatch,
    InvalidInput,
    JobCancelled,
    JobError,
    PayloadTooLarge,
)
from jobs.live.notify import live_fields, notify
from jobs.models import ApiKey, Job, JobEvent, JobStatus
from jobs.publish import publish_job, publish_on_commit
from jobs.transitions import WAITING, can_transition
from jobs.writes import (
    FromRow,
    insert_with_event,
    update_returning_with_event,
    update_with_event,
)

log = logging.getLogger(__name__)

S = JobStatus


# --- the one write path for status ------------------------------------------------------


def _transition(
    job_id: Any,
    from_status: str,
    to_status: str,
    *,
    actor: str,
    reason: str,
    fields: dict[str, Any] | None = None,
    where: Q | None = None,
    attempt: int | FromRow = 0,
    data: dict[str, Any] | None = None,
    returning: list[str] | None = None,
) -> Any:
    """Move a job from ``from_status`` to ``to_status`` if, and only if, it is still there.

    Returns whether it moved (with ``returning``: the moved row with those fields, or
    None). The event is written with the change it describes, in the same statement.
    """
    if not can_transition(from_status, to_status):
        raise ValueError(f"transition {from_status} -> {to_status} is not allowed")
    now = timezone.now()
    fields = fields or {}
    values = {"status": to_status, "updated_at": now, **fields}
    query = Job.objects.filter(pk=job_id, status=from_status)
    if where is not None:
        query = query.filter(where)
    event = {
        "job_id": job_id,
        "at": now,
        "kind": JobEvent.Kind.TRANSITION,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "reason": reason,
        "attempt": attempt,
        "data": data,
    }
    if returning is None:
        moved = update_with_event(query, values, event)
        written = fields
    else:
        moved = update_returning_with_event(query, job_id, values, event, returning)
        # Expressions (attempts + 1) are reported as the row now holds them.
        written = {
            name: getattr(moved, name) if isinstance(value, Combinable) else value
            for name, value in fields.items()
            if moved is not None and (name in returning or not isinstance(value, Combinable))
        }
    if moved:
        _moved(job_id, from_status, to_status, reason, actor, written)
    return moved


def _moved(
    job_id: Any, from_status: str, to_status: str, reason: str, actor: str, written: dict
) -> None:
    """What follows every status change: watchers hear of it once it commits."""
    transaction.on_commit(
        partial(notify, job_id, status=to_status, **live_fields(written, to_status))
    )
    log.info("job %s: %s -> %s (%s; %s)", job_id, from_status, to_status, reason, actor)


def _event(
    job_id: Any, *, kind: str, actor: str, reason: str, attempt: int = 0, data: Any = None
) -> None:
    JobEvent.objects.create(
        job_id=job_id, kind=kind, actor=actor, reason=reason, attempt=attempt, data=data
    )


# --- create -------------------------------------------------------------------------------


def request_fingerprint(payload: Any) -> str:
    """A stable hash of a create request, to tell a replay from a different request."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _idempotent_match(owner: Any, key: str, fingerprint: str) -> Job | None:
    existing = Job.objects.filter(owner=owner, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyMismatch(
            "This Idempotency-Key was already used with a different request",
            details={"job_id": str(existing.pk)},
        )
    return existing


def _with_upload_name(jtype: registry.JobType, params: Any, upload: File | None) -> Any:
    """A file-taking type with a ``filename`` param learns the uploaded file's name."""
    if (
        upload is not None
        and isinstance(params, dict)
        and not params.get("filename")
        and jtype.params_model is not None
        and "filename" in jtype.params_model.model_fields
    ):
        return {**params, "filename": Path(upload.name or "upload").name[:255]}
    return params


def job_create(
    *,
    owner: Any,
    job_type: str,
    params: Any,
    actor: str,
    priority: int | None = None,
    max_retries: int | None = None,
    run_at: datetime | None = None,
    idempotency_key: str | None = None,
    fingerprint: str = "",
    callback_url: str = "",
    input_file: File | None = None,
    public_only: bool = True,
    queue: str | None = None,
) -> tuple[Job, bool]:
    """Write the Job row and its first event, then publish after commit.

    Returns ``(job, created)``; ``created`` is False when an ``idempotency_key`` replays an
    earlier identical request.
    """
    jtype = registry.get(job_type, public_only=public_only)
    if input_file is not None and not jtype.accepts_file:
        raise InvalidInput(
            f"Job type '{jtype.name}' does not take a file",
            details={"file": ["not accepted by this job type"]},
        )
    clean = jtype.validate(_with_upload_name(jtype, params, input_file))
    _check_params_size(clean)
    if jtype.check is not None:
        jtype.check(owner, clean, input_file is not None)
    if idempotency_key and (found := _idempotent_match(owner, idempotency_key, fingerprint)):
        return found, False

    now = timezone.now()
    scheduled = run_at is not None and run_at > now
    job = Job(
        type=jtype.name,
        params=clean,
        status=S.SCHEDULED if scheduled else S.PENDING,
        priority=5 if priority is None else priority,
        max_retries=jtype.max_retries if max_retries is None else max_retries,
        queue=queue or jtype.queue,
        time_limit=jtype.time_limit,
        owner=owner,
        idempotency_key=idempotency_key or None,
        request_fingerprint=fingerprint,
        callback_url=callback_url or "",
        run_at=run_at,
        created_at=now,
        updated_at=now,
    )
    if input_file is not None:
        job.input_file = input_file
    reason = f"created; runs at {run_at.isoformat()}" if scheduled else "created"
    event = {
        "at": now,
        "kind": JobEvent.Kind.TRANSITION,
        "from_status": "",
        "to_status": job.status,
        "actor": actor,
        "reason": reason,
        "attempt": 0,
    }
    try:
        insert_with_event(job, event)
    except IntegrityError:
        # Two requests raced with the same Idempotency-Key: the first one won.
        if idempotency_key and (found := _idempotent_match(owner, idempotency_key, fingerprint)):
            return found, False
        raise
    if not scheduled:
        publish_on_commit(job)
    return job, True


def _check_params_size(params: Any) -> None:
    """A job's params are read on every claim and with every single-job response: they
    are its instructions, not its data (a file or a URL carries the data)."""
    text = json.dumps(params, ensure_ascii=False, separators=(",", ":"))
    size = len(text.encode("utf-8", "surrogatepass"))  # a size, whatever the text holds
    limit = settings.JOBSITE_MAX_PARAMS_BYTES
    if size > limit:
        raise PayloadTooLarge(
            f"params are {size} bytes as JSON; at most {limit} (JOBSITE_MAX_PARAMS_BYTES) are "
            "accepted: send large inputs as a file upload or a file_url",
            code="params_too_large",
            details={"params": [f"{size} bytes, over the limit of {limit}"]},
        )


# --- the worker's side --------------------------------------------------------------------


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
    if connection.vendor == "postgresql":
        for source, due in ((S.PENDING, None), (S.RETRYING, due_by)):
            job = writes.claim(
                job_id,
                fields=CLAIM_FIELDS,
                now=now,
                due=due,
                task_id=task_id,
                worker=worker[:255],
                kind=JobEvent.Kind.TRANSITION,
                actor=f"system:{worker}"[:200],
                reason="attempt started",
                **{"from": source, "to": S.RUNNING},
            )
            if job is not None:
                written = {"attempts": job.attempts, "progress": 0.0, "current_step": ""}
                _moved(job_id, source, S.RUNNING, "attempt started", f"system:{worker}", written)
                return job
        return _not_claimable(job_id, task_id)
    # The ORM's claim (SQLite). PostgreSQL runs jobs.writes._CLAIM with the same values:
    # change both together.
    fields = {
        "attempts": F("attempts") + 1,
        "started_at": Coalesce(F("started_at"), Value(now)),
        "heartbeat_at": now,
        "attempt_started_at": now,
        "celery_task_id": task_id,
        "worker": worker[:255],
        "next_retry_at": None,
        "progress": 0.0,
        "current_step": "",
        "dispatched_at": None,
    }
    due = Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=due_by)
    for source, where in ((S.PENDING, None), (S.RETRYING, due)):
        job = _transition(
            job_id,
            source,
            S.RUNNING,
            where=where,
            fields=fields,
            actor=f"system:{worker}",
            reason="attempt started",
            attempt=FromRow("attempts"),
            returning=CLAIM_FIELDS,
        )
        if job is not None:
            return job
    return _not_claimable(job_id, task_id)


def _not_claimable(job_id: Any, task_id: str) -> None:
    log.info(
        "Job %s is not claimable (running, finished, cancelled, not due or gone): "
        "message %s skipped",
        job_id,
        task_id,
    )


def _attempt(job_id: Any, task_id: str):
    """The row, if this attempt still owns it."""
    return Job.objects.filter(pk=job_id, status=S.RUNNING, celery_task_id=task_id)


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
            status=S.RUNNING,
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
    _event(job_id, kind=JobEvent.Kind.NOTE, actor=actor, reason=message, attempt=attempt, data=data)


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
    now = timezone.now()
    if connection.vendor == "postgresql":
        moved = writes.complete(
            job_id,
            result=result,
            now=now,
            task_id=task_id,
            kind=JobEvent.Kind.TRANSITION,
            actor="system:worker",
            reason="completed",
            attempt=attempt,
            **{"from": S.RUNNING, "to": S.COMPLETED},
        )
        if moved:
            written = {"result": result, "progress": 100.0, "error_code": ""}
            _moved(job_id, S.RUNNING, S.COMPLETED, "completed", "system:worker", written)
        return moved
    return _transition(
        job_id,
        S.RUNNING,
        S.COMPLETED,
        where=Q(celery_task_id=task_id),
        # The same values as jobs.writes._COMPLETE (PostgreSQL): change both together.
        fields={
            "result": result,
            "progress": 100.0,
            "completed_at": now,
            "heartbeat_at": None,
            "error_code": "",
            "error_message": "",
            "error_traceback": "",
        },
        actor="system:worker",
        reason="completed",
        attempt=attempt,
    )


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    retryable: bool


def classify(exc: BaseException, job: Job) -> Failure:
    """What an exception means for the job: its code, message, and whether to retry."""
    if isinstance(exc, JobError):
        return Failure(exc.code, exc.message, exc.retryable)
    if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)):
        return Failure("timeout", f"The job exceeded its time limit of {job.time_limit} s", False)
    if isinstance(exc, WorkerLostError):
        return Failure("worker_lost", f"The worker process running the job died: {exc}", True)
    if isinstance(exc, MemoryError):
        return Failure("out_of_memory", "The job ran out of memory", False)
    return Failure("internal_error", f"{type(exc).__name__}: {exc}"[:2000], True)


def retry_delay(attempt: int) -> float:
    """Exponential backoff with equal jitter: never zero, never in lockstep."""
    ceiling = min(
        settings.JOBSITE_RETRY_BACKOFF_MAX,
        settings.JOBSITE_RETRY_BACKOFF_BASE * 2 ** max(0, attempt - 1),
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)


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
    if job is None or job.status != S.RUNNING or job.celery_task_id != task_id:
        return False  # a stale attempt: the row has moved on without it
    failure = classify(exc, job)
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
        return _transition(
            job.pk,
            S.RUNNING,
            S.CANCELLED,
            where=owned,
            fields={"completed_at": now, "heartbeat_at": None},
            actor=actor,
            reason=f"stopped after a cancel request ({failure.code})",
            attempt=job.attempts,
        )
    if failure.retryable and job.attempts_left > 0:
        delay = retry_delay(job.attempts)
        due = now + timedelta(seconds=delay)
        countdown = delay if delay <= settings.JOBSITE_RETRY_COUNTDOWN_MAX else None
        with transaction.atomic():
            moved = _transition(
                job.pk,
                S.RUNNING,
                S.RETRYING,
                where=owned,
                fields={**error, "next_retry_at": due, "dispatched_at": due if countdown else None},
                actor=actor,
                reason=f"{attempt_of} failed ({failure.code}): {failure.message}; "
                f"retry in {delay:.1f} s",
                attempt=job.attempts,
            )
            if moved and countdown is not None:
                publish_on_commit(job, countdown=countdown)
        return moved
    why = "no retries left" if failure.retryable else "not retryable"
    return _transition(
        job.pk,
        S.RUNNING,
        S.FAILED,
        where=owned,
        fields={**error, "completed_at": now},
        actor=actor,
        reason=f"{attempt_of} failed ({failure.code}): {failure.message}; {why}",
        attempt=job.attempts,
    )


# --- steering: cancel and restart -------------------------------------------------------


def job_cancel(job: Job, *, actor: str) -> str:
    """Cancel a waiting job at once, or ask a running one to stop at its next progress call.

    Returns the job's status afterwards (``cancelled`` or ``running``).
    """
    for _ in range(5):  # re-read and try again if a worker moved the job meanwhile
        now = timezone.now()
        if job.status in WAITING:
            if _transition(
                job.pk,
                job.status,
                S.CANCELLED,
                fields={"completed_at": now, "cancel_requested_at": now},
                actor=actor,
                reason="cancelled before it ran",
                attempt=job.attempts,
            ):
                return S.CANCELLED
        elif job.status == S.RUNNING:
            if job.cancel_requested_at is not None:
                return S.RUNNING
            with transaction.atomic():
                asked = Job.objects.filter(
                    pk=job.pk, status=S.RUNNING, cancel_requested_at__isnull=True
                ).update(cancel_requested_at=now, updated_at=now)
                if asked:
                    transaction.on_commit(partial(notify, job.pk, cancel_requested=True))
                    _event(
                        job.pk,
                        kind=JobEvent.Kind.CANCEL_REQUESTED,
                        actor=actor,
                        reason="cancel requested; the job stops at its next progress call",
                        attempt=job.attempts,
                    )
            if asked:
                return S.RUNNING
        else:
            raise Conflict(f"Job is already {job.status}", code="job_not_cancellable")
        job.refresh_from_db()
    raise Conflict("Job is changing too fast to cancel; try again", code="job_busy")


def job_restart(job: Job, *, actor: str) -> None:
    """Run a failed or cancelled job again, under the same id, as a fresh run of attempts."""
    if job.status not in (S.FAILED, S.CANCELLED):
        raise Conflict(
            f"Only failed or cancelled jobs can be restarted; this one is {job.status}",
            code="job_not_restartable",
        )
    now = timezone.now()
    with transaction.atomic():
        moved = _transition(
            job.pk,
            job.status,
            S.PENDING,
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
        publish_on_commit(job)
    job.refresh_from_db()


# --- maintenance (called by jobs.maintenance on the sweeper's schedule) -------------------


def job_publish_due_scheduled(job: Job) -> bool:
    """A scheduled job whose time has come becomes pending and is published."""
    if not _transition(
        job.pk,
        S.SCHEDULED,
        S.PENDING,
        fields={"dispatched_at": timezone.now()},
        actor="system:scheduler",
        reason="run_at reached",
    ):
        return False
    publish_job(job)
    return True


def job_redispatch(job: Job, *, reason: str) -> bool:
    """Publish a pending or due retrying job again (its message was lost or never sent)."""
    marked = Job.objects.filter(
        pk=job.pk, status=job.status, dispatched_at=job.dispatched_at
    ).update(dispatched_at=timezone.now())
    if not marked:
        return False
    job_note(job.pk, actor="system:dispatcher", message=reason, attempt=job.attempts)
    publish_job(job)
    return True


def job_terminate_cancelled(job: Job) -> bool:
    """A running job that ignored its cancel request past the grace period."""
    return _transition(
        job.pk,
        S.RUNNING,
        S.CANCELLED,
        where=Q(celery_task_id=job.celery_task_id),
        fields={"completed_at": timezone.now(), "heartbeat_at": None},
        actor="system:sweeper",
        reason="did not stop within the cancel grace period; terminated",
        attempt=job.attempts,
    )


# --- API keys -----------------------------------------------------------------------------


def api_key_create(*, user: Any, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    from jobs.auth import generate_key

    prefix, key, hashed = generate_key()
    api_key = ApiKey.objects.create(user=user, name=name, prefix=prefix, hashed_key=hashed)
    return api_key, key


def api_key_revoke(api_key: ApiKey) -> None:
    from jobs.auth import forget_key

    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    forget_key(api_key.prefix)
