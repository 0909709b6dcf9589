"""Every write to a Job: create, claim, progress, complete, fail, retry, cancel, restart.

Each status change is a compare-and-swap on the status it observed (plus, where it
matters, the attempt's Celery task id), written with its event by ``jobs.writes``, which
asks ``jobs.transitions`` first: nothing else writes ``Job.status``.

    creation   a new job: validation, Idempotency-Key, first event, publish
    attempts   the worker's side: claim, progress, heartbeat, complete, fail or retry
    failures   the failure policy (pure): what an exception means, how long a retry waits
    steering   cancel and restart
    sweeping   the sweeper's writes: due schedules, lost messages, unstoppable jobs
    moves      a status change and what follows it (watchers told, a log line)
"""

from jobs.services.attempts import (
    CLAIM_FIELDS,
    AttemptWrites,
    attempt_stop_reason,
    job_attempt_failed,
    job_claim,
    job_complete,
    job_heartbeat,
    job_keep_alive,
    job_note,
    job_record_progress,
)
from jobs.services.creation import job_create, request_fingerprint
from jobs.services.failures import Failure, classify, retry_delay
from jobs.services.steering import job_cancel, job_restart
from jobs.services.sweeping import (
    job_publish_due_scheduled,
    job_redispatch,
    job_terminate_cancelled,
)

__all__ = [
    "CLAIM_FIELDS",
    "AttemptWrites",
    "Failure",
    "attempt_stop_reason",
    "classify",
    "job_attempt_failed",
    "job_cancel",
    "job_claim",
    "job_complete",
    "job_create",
    "job_heartbeat",
    "job_keep_alive",
    "job_note",
    "job_publish_due_scheduled",
    "job_record_progress",
    "job_redispatch",
    "job_restart",
    "job_terminate_cancelled",
    "request_fingerprint",
    "retry_delay",
]
