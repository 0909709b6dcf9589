"""A status change as the services make it: written by ``jobs.writes`` (which checks it
against ``jobs.transitions``), then heard by watchers once it commits, and logged."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.db.models.expressions import Combinable
from django.utils import timezone

from jobs import writes
from jobs.live.notify import live_fields, notify
from jobs.models import TERMINAL_STATUSES, Job, JobEvent
from jobs.webhooks import deliveries
from jobs.writes import FromRow
from jobsite import logs

log = logging.getLogger("jobs.services")

# What an ending change reads back from the row: whether, where and of what end to tell,
# and the batch whose last job this may be.
ENDED_FIELDS = ("callback_url", "owner", "completed_at", "batch")


def transition(
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
    now = timezone.now()
    fields = fields or {}
    query = Job.objects.filter(pk=job_id)
    if where is not None:
        query = query.filter(where)
    event = {"job_id": job_id, "at": now, "actor": actor[:200], "reason": reason}
    event.update(attempt=attempt, data=data)
    ends = to_status in TERMINAL_STATUSES
    wanted = [*(returning or []), *(ENDED_FIELDS if ends else ())] or None
    moved = writes.transition(
        query, from_status, to_status, {"updated_at": now, **fields}, event, wanted
    )
    if wanted is None:
        written = fields
    else:
        # Expressions (attempts + 1) are reported as the row now holds them.
        written = {
            name: getattr(moved, name) if isinstance(value, Combinable) else value
            for name, value in fields.items()
            if moved is not None and (name in wanted or not isinstance(value, Combinable))
        }
    if moved:
        announce(
            job_id, from_status, to_status, reason, actor, written, ended=moved if ends else None
        )
    if returning is None:
        return bool(moved)
    return moved


def announce(
    job_id: Any,
    from_status: str,
    to_status: str,
    reason: str,
    actor: str,
    written: dict,
    *,
    ended: Job | None = None,
) -> None:
    """What follows every status change: watchers hear of it once it commits, and a job
    that ended (``ended``: its row's ``ENDED_FIELDS``) tells its callback URL and, once
    committed, closes its batch if it was the batch's last."""
    transaction.on_commit(
        partial(notify, job_id, status=to_status, **live_fields(written, to_status))
    )
    with logs.job_context(ended, job_id=job_id):  # adds to the caller's, for this job
        log.info("job %s: %s -> %s (%s; %s)", job_id, from_status, to_status, reason, actor)
    if ended is None:
        return
    if ended.callback_url:
        deliveries.on_end(ended, to_status)
    if ended.batch_id is not None:
        # After the commit: the last job of a batch to commit sees every other one ended.
        transaction.on_commit(partial(_batch_job_ended, ended.batch_id))


def _batch_job_ended(batch_id: Any) -> None:
    from jobs.services.batches import batch_job_ended  # batches builds on creation and steering

    try:
        batch_job_ended(batch_id)
    except Exception:  # the job's end is committed; the sweeper closes the batch instead
        log.exception("Could not close batch %s; the sweeper will", batch_id)


def note(
    job_id: Any, *, kind: str, actor: str, reason: str, attempt: int = 0, data: Any = None
) -> None:
    """An event that is not a status change (a note, a cancel request)."""
    JobEvent.objects.create(
        job_id=job_id, kind=kind, actor=actor[:200], reason=reason, attempt=attempt, data=data
    )
