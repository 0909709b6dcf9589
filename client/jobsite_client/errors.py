"""What a failed call raises: one exception per kind of answer, each with the API's own
error code, message and details (``{"error": {"code", "message", "details"}}``)."""

from __future__ import annotations

from typing import Any


class JobsiteError(Exception):
    """An error answer from the API (or no answer: ``status`` 0)."""

    def __init__(
        self, message: str, *, status: int = 0, code: str = "", details: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details

    def __str__(self) -> str:
        where = f"{self.status} " if self.status else ""
        return f"{where}{self.code or 'error'}: {self.message}"


class InvalidRequest(JobsiteError):
    """400, 413, 415, 422: the request itself was refused; sending it again will not help."""


class AuthenticationError(JobsiteError):
    """401 or 403: no key, a wrong or revoked key."""


class NotFound(JobsiteError):
    """404: no such job (or collection, memory...) among yours."""


class Conflict(JobsiteError):
    """409: the request does not fit the resource's state (cancel a finished job...)."""


class RateLimited(JobsiteError):
    """429, after the retries ran out."""


class ServerError(JobsiteError):
    """5xx after the retries ran out, or no answer at all."""


class WaitTimeout(JobsiteError):
    """``jobs.wait`` reached its timeout before the job ended; ``job`` is its last state."""

    def __init__(self, message: str, job: Any) -> None:
        super().__init__(message, code="wait_timeout")
        self.job = job


_BY_STATUS: dict[int, type[JobsiteError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
}


def from_response(status: int, body: Any, fallback: str) -> JobsiteError:
    """The exception for an error answer, from its JSON body when it has one."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": "", "message": fallback}
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else JobsiteError)
    return kind(
        str(error.get("message") or fallback),
        status=status,
        code=str(error.get("code") or ""),
        details=error.get("details"),
    )
