"""A new job: validated, deduplicated by its Idempotency-Key, written with its first
event, and published once the row commits."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError
from django.utils import timezone

from jobs import publish, registry
from jobs.errors import IdempotencyMismatch, InvalidInput, PayloadTooLarge
from jobs.models import Batch, Job, JobEvent, JobStatus
from jobs.writes import insert_with_event
from jobsite import logs

log = logging.getLogger("jobs.services")


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
    batch: Batch | None = None,
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
        status=JobStatus.SCHEDULED if scheduled else JobStatus.PENDING,
        priority=5 if priority is None else priority,
        max_retries=jtype.max_retries if max_retries is None else max_retries,
        queue=queue or jtype.queue,
        time_limit=jtype.time_limit,
        owner=owner,
        idempotency_key=idempotency_key or None,
        request_fingerprint=fingerprint,
        callback_url=callback_url or "",
        batch=batch,
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
        "actor": actor[:200],
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
    with logs.job_context(job):
        log.info("job %s: -> %s (%s; %s)", job.pk, job.status, reason, actor)
    if not scheduled:
        publish.publish_on_commit(job)
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
