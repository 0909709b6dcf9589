"""One exception family for the platform and one for jobs.

``JobsiteError`` is raised by services for requests the caller got wrong; the API maps
its ``status`` to the HTTP response in one place (``jobs.api.errors``). ``JobError`` is
raised by pipelines; its ``code`` and ``message`` end up on the Job row, and
``retryable`` says whether another attempt could help.
"""

from __future__ import annotations

from typing import Any


class JobsiteError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class InvalidInput(JobsiteError):
    code = "invalid_input"


class UnknownJobType(InvalidInput):
    code = "unknown_job_type"


class NotFound(JobsiteError):
    status = 404
    code = "not_found"


class Conflict(JobsiteError):
    status = 409
    code = "conflict"


class IdempotencyMismatch(JobsiteError):
    status = 422
    code = "idempotency_key_reused"


class PayloadTooLarge(JobsiteError):
    status = 413
    code = "payload_too_large"


class JobError(Exception):
    """A pipeline's way to fail a job with a clear message.

    Permanent by default: bad input does not get better by retrying. Pass
    ``retryable=True`` for transient trouble (a remote service down).
    """

    code = "job_error"
    retryable = False

    def __init__(
        self, message: str, *, code: str | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class JobCancelled(JobError):
    """Raised at a progress call once someone asked the job to stop."""

    code = "cancelled"


class AttemptLost(JobError):
    """Raised at a progress call when this attempt no longer owns the job (it was reaped,
    failed or restarted elsewhere): the work must stop and write nothing more."""

    code = "attempt_lost"


def error_fields(status: str, code: str, message: str) -> dict[str, Any]:
    """Where a job's error shows in responses and live events. ``error`` only once the job
    has failed for good: clients stop at the first ``error`` they see (Compileo's stream
    client does), and a job whose attempt failed may still succeed. The error of such an
    attempt is ``last_error``."""
    if not code:
        return {}
    key = "error" if status == "failed" else "last_error"
    return {key: {"code": code, "message": message}}
