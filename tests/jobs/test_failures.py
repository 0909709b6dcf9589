"""The failure policy on its own: no database, no worker, no settings."""

from __future__ import annotations

import pytest
from billiard.exceptions import WorkerLostError
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from jobs.errors import AttemptLost, JobError
from jobs.services.failures import Failure, classify, retry_delay


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (JobError("bad file", code="bad_file"), Failure("bad_file", "bad file", False)),
        (JobError("later", code="busy", retryable=True), Failure("busy", "later", True)),
        (
            SoftTimeLimitExceeded(),
            Failure("timeout", "The job exceeded its time limit of 30 s", False),
        ),
        (TimeLimitExceeded(), Failure("timeout", "The job exceeded its time limit of 30 s", False)),
        (MemoryError(), Failure("out_of_memory", "The job ran out of memory", False)),
        (RuntimeError("boom"), Failure("internal_error", "RuntimeError: boom", True)),
    ],
)
def test_each_kind_of_exception_has_its_code_message_and_retry_rule(exc, expected):
    assert classify(exc, time_limit=30) == expected


def test_a_lost_worker_is_retried_and_named():
    failure = classify(WorkerLostError("signal 9"), time_limit=30)
    assert failure.code == "worker_lost" and failure.retryable
    assert "signal 9" in failure.message


def test_a_job_error_subclass_keeps_its_own_code():
    failure = classify(AttemptLost("gone"), time_limit=30)
    assert failure.code == AttemptLost("x").code and failure.message == "gone"


def test_an_internal_error_message_is_bounded():
    assert len(classify(RuntimeError("x" * 10_000), time_limit=30).message) == 2000


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 2), (1, 2), (2, 4), (3, 8), (20, 600)])
def test_the_delay_doubles_per_attempt_up_to_the_cap_with_equal_jitter(attempt, ceiling):
    low = retry_delay(attempt, base=2, cap=600, uniform=lambda a, b: a)
    high = retry_delay(attempt, base=2, cap=600, uniform=lambda a, b: b)
    assert (low, high) == (ceiling / 2, ceiling)


def test_the_jitter_spreads_retries_that_failed_together():
    delays = {retry_delay(3, base=2, cap=600) for _ in range(50)}
    assert len(delays) > 1 and all(4 <= d <= 8 for d in delays)
