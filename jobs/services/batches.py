"""Batches: many jobs created in one transaction, counted, cancelled and told of as one.

A batch's state is read from its jobs (``jobs.selectors.batch_counts``); what the batch
row itself records is when its last job ended. Whoever ends a batch's job looks, after
its own commit, whether any job of the batch is still to end: the last one to commit
always sees all of them ended, so a batch is never left open by a race between its last
two jobs, and the conditional UPDATE lets only one of them close it (one
``batch.completed`` delivery). A worker killed between its commit and that look is
covered by the sweeper (``close_missed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from jobs.errors import Conflict, IdempotencyMismatch, InvalidInput, JobsiteError
from jobs.models import TERMINAL_STATUSES, Batch, Job
from jobs.services.creation import job_create
from jobs.services.steering import job_cancel
from jobs.webhooks import deliveries

# How many open batches the sweeper looks at per run.
SWEEP_BATCH = 200


@dataclass(frozen=True)
class JobSpec:
    """One job of a batch, as the request gave it."""

    type: str
    params: Any = field(default_factory=dict)
    priority: int | None = None
    max_retries: int | None = None
    run_at: Any = None
    callback_url: str = ""
    input_file: File | None = None


def batch_create(
    *,
    owner: Any,
    specs: Sequence[JobSpec],
    actor: str,
    label: str = "",
    callback_url: str = "",
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> tuple[Batch, bool]:
    """Every job of the batch, or none: one transaction, messages published after it
    commits. Returns ``(batch, created)``; a replayed Idempotency-Key returns the first
    batch (``created`` False)."""
    limit = settings.JOBSITE_BATCH_MAX_JOBS
    if not specs:
        raise InvalidInput("A batch needs at least one job", details={"jobs": ["empty"]})
    if len(specs) > limit:
        raise InvalidInput(
            f"A batch holds at most {limit} jobs (JOBSITE_BATCH_MAX_JOBS); this one has "
            f"{len(specs)}",
            code="batch_too_large",
            details={"jobs": [f"{len(specs)} jobs, over the limit of {limit}"]},
        )
    if idempotency_key and (found := _idempotent_match(owner, idempotency_key, fingerprint)):
        return found, False
    try:
        with transaction.atomic():
            batch = Batch.objects.create(
                owner=owner,
                label=label,
                total=len(specs),
                callback_url=callback_url,
                idempotency_key=idempotency_key or None,
                request_fingerprint=fingerprint,
            )
            for index, spec in enumerate(specs):
                try:
                    job_create(
                        owner=owner,
                        job_type=spec.type,
                        params=spec.params,
                        actor=actor,
                        priority=spec.priority,
                        max_retries=spec.max_retries,
                        run_at=spec.run_at,
                        callback_url=spec.callback_url,
                        input_file=spec.input_file,
                        batch=batch,
                    )
                except JobsiteError as exc:
                    raise type(exc)(
                        f"jobs[{index}]: {exc.message}",
                        code=exc.code,
                        details={"jobs": {str(index): exc.details or [exc.message]}},
                    ) from None
    except IntegrityError:
        # Two requests raced with the same Idempotency-Key: the first one won.
        if idempotency_key and (found := _idempotent_match(owner, idempotency_key, fingerprint)):
            return found, False
        raise
    return batch, True


def _idempotent_match(owner: Any, key: str, fingerprint: str) -> Batch | None:
    existing = Batch.objects.filter(owner=owner, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyMismatch(
            "This Idempotency-Key was already used with a different batch",
            details={"batch_id": str(existing.pk)},
        )
    return existing


def batch_cancel(batch: Batch, *, actor: str) -> dict[str, int]:
    """Cancel every job of the batch that has not ended: waiting ones at once, running ones
    asked to stop. Returns how many of each; jobs that ended meanwhile are left alone."""
    counts = {"cancelled": 0, "stopping": 0}
    open_jobs = Job.objects.filter(batch=batch).exclude(status__in=TERMINAL_STATUSES).order_by("pk")
    for job in open_jobs.iterator(chunk_size=200):
        try:
            status = job_cancel(job, actor=actor)
        except Conflict:  # it ended (or is changing) as we got to it
            continue
        counts["cancelled" if status in TERMINAL_STATUSES else "stopping"] += 1
    return counts


def batch_job_ended(batch_id: Any) -> bool:
    """A job of the batch ended and committed: close the batch if it was the last one.
    Returns whether this call closed it."""
    still_open = Job.objects.filter(batch_id=batch_id).exclude(status__in=TERMINAL_STATUSES)
    if still_open.exists():
        return False
    now = timezone.now()
    with transaction.atomic():
        closed = Batch.objects.filter(pk=batch_id, completed_at__isnull=True).update(
            completed_at=now
        )
        if closed:
            batch = Batch.objects.only("pk", "owner_id", "callback_url", "completed_at").get(
                pk=batch_id
            )
            deliveries.on_batch_end(batch)
    return bool(closed)


def close_missed() -> int:
    """The sweeper's share: open batches none of whose jobs is still to end (the worker
    that ended the last one died before it looked)."""
    settle = timezone.now() - timedelta(seconds=5)  # not one its last job's writer is closing
    open_job = Job.objects.filter(batch=OuterRef("pk")).exclude(status__in=TERMINAL_STATUSES)
    missed = (
        Batch.objects.filter(completed_at__isnull=True, created_at__lte=settle)
        .filter(~Exists(open_job))
        .order_by("created_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    return sum(batch_job_ended(pk) for pk in list(missed))
