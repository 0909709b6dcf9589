"""The one place that says which status may follow which, and what may be steered.

Every status write (``jobs.writes``, fast statements included) asks this module first and
then performs the change as a conditional UPDATE on the status it observed, so a racing
writer loses cleanly instead of taking a job from ``completed`` back to ``running``.
"""

from __future__ import annotations

from jobs.models import TERMINAL_STATUSES, JobStatus

# What a new job is: due now, or waiting for its run_at.
INITIAL = frozenset({JobStatus.PENDING, JobStatus.SCHEDULED})

# The life of one run of attempts.
LIFECYCLE: dict[str, frozenset[str]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    # Published by the sweeper when due.
    JobStatus.SCHEDULED: frozenset({JobStatus.PENDING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.RETRYING, JobStatus.CANCELLED}
    ),
    # A retry waits for its backoff; the reaper or a bad row may also fail it.
    JobStatus.RETRYING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
}

# Jobs that have not started their current attempt: a cancel ends them at once.
WAITING = frozenset({JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.RETRYING})

# A cancel ends a waiting job, and asks a running one to stop at its next progress call.
CANCELLABLE = WAITING | {JobStatus.RUNNING}

# Restart: a new run of attempts under the same id, back to pending.
RESTARTABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})

ALLOWED: dict[str, frozenset[str]] = {
    status: LIFECYCLE.get(status, frozenset())
    | (frozenset({JobStatus.PENDING}) if status in RESTARTABLE else frozenset())
    for status in JobStatus.values
}
assert not ALLOWED[JobStatus.COMPLETED] and RESTARTABLE <= TERMINAL_STATUSES


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED.get(from_status, frozenset())


def can_cancel(status: str) -> bool:
    return status in CANCELLABLE


def can_restart(status: str) -> bool:
    return status in RESTARTABLE


def sources(to_status: str) -> frozenset[str]:
    """Every status from which ``to_status`` may be reached."""
    return frozenset(src for src, targets in ALLOWED.items() if to_status in targets)
