"""Steering jobs from the admin: one path for the bulk actions and the per-job buttons.

Nothing here writes ``Job.status``: each step calls a service, and a ``Conflict`` (the
job moved on, or may not make that move) is reported to the operator, never raised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from django.http import HttpRequest

from jobs.auth import actor_name
from jobs.errors import Conflict
from jobs.models import Job, JobStatus
from jobs.services import job_cancel, job_restart

# What one step did to one job, for the summary ("cancelled", "stopping", "restarted").
Step = Callable[[Job, str], str]


def cancel_step(job: Job, actor: str) -> str:
    """A running job only stops at its next check: say so rather than claim it is done."""
    return "cancelled" if job_cancel(job, actor=actor) == JobStatus.CANCELLED else "stopping"


def restart_step(job: Job, actor: str) -> str:
    """Restart in the shape of a step, so actions and buttons share ``steer``."""
    job_restart(job, actor=actor)
    return "restarted"


def steer(jobs: Iterable[Job], step: Step, *, actor: str) -> tuple[str, bool]:
    """Run one service per job; a Conflict skips that job and is reported, never raised.

    Returns a summary such as "3 cancelled, 1 stopping, 2 skipped: Job is already completed
    (2)" and whether any job was skipped.
    """
    done: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for job in jobs:
        try:
            done[step(job, actor)] += 1
        except Conflict as exc:
            skipped[exc.message] += 1
    parts = [f"{count} {outcome}" for outcome, count in sorted(done.items())]
    if skipped:
        reasons = "; ".join(f"{reason} ({count})" for reason, count in skipped.items())
        parts.append(f"{skipped.total()} skipped: {reasons}")
    return ", ".join(parts) or "nothing to do", bool(skipped)


def actor_of(request: HttpRequest) -> str:
    """Who is acting in the admin, as the event log records it."""
    return actor_name(request.user)
