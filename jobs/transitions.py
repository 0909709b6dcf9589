"""The one place that says which status may follow which.

Every status write in ``jobs.services`` asks this module first and then performs the
change as a conditional UPDATE on the status it observed, so a racing writer loses
cleanly instead of taking a job from ``completed`` back to ``running``.
"""

from __future__ import annotations

from jobs.models import JobStatus as S

ALLOWED: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.RUNNING, S.CANCELLED}),
    # Published by the sweeper when due.
    S.SCHEDULED: frozenset({S.PENDING, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.RETRYING, S.CANCELLED}),
    # A retry waits for its backoff; the reaper or a bad row may also fail it.
    S.RETRYING: frozenset({S.RUNNING, S.CANCELLED, S.FAILED}),
    S.COMPLETED: frozenset(),
    # Restart: a new attempt under the same id.
    S.FAILED: frozenset({S.PENDING}),
    S.CANCELLED: frozenset({S.PENDING}),
}

# Jobs that have not started their current attempt and can be cancelled outright.
WAITING = frozenset({S.PENDING, S.SCHEDULED, S.RETRYING})


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED.get(from_status, frozenset())


def sources(to_status: str) -> frozenset[str]:
    """Every status from which ``to_status`` may be reached."""
    return frozenset(src for src, targets in ALLOWED.items() if to_status in targets)
