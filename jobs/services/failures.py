"""The failure policy: what an exception means for a job, and how long a retry waits.

Pure functions (no database, no settings read inside): the policy is tested on its own,
and the attempt services pass in what it depends on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from billiard.exceptions import WorkerLostError
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from jobs.errors import JobError


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    retryable: bool


def classify(exc: BaseException, *, time_limit: int) -> Failure:
    """What an exception means for the job: its code, message, and whether to retry.

    A job's own ``JobError`` says so itself; a lost worker is worth another attempt, a
    time limit or memory exhaustion would only happen again; anything else is presumed
    transient (a bug shows up as ``internal_error`` once the retries are spent).
    """
    if isinstance(exc, JobError):
        return Failure(exc.code, exc.message, exc.retryable)
    if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)):
        return Failure("timeout", f"The job exceeded its time limit of {time_limit} s", False)
    if isinstance(exc, WorkerLostError):
        return Failure("worker_lost", f"The worker process running the job died: {exc}", True)
    if isinstance(exc, MemoryError):
        return Failure("out_of_memory", "The job ran out of memory", False)
    return Failure("internal_error", f"{type(exc).__name__}: {exc}"[:2000], True)


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Exponential backoff with equal jitter: half the ceiling fixed, half random, so a
    retry is never immediate and a crowd that failed together does not retry in lockstep."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return ceiling / 2 + uniform(0, ceiling / 2)
