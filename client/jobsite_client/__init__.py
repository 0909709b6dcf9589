"""The Python client for a Jobsite server (sync ``Jobsite``, async ``AsyncJobsite``)."""

from jobsite_client.client import AsyncJobsite, Jobsite
from jobsite_client.errors import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    JobsiteError,
    NotFound,
    RateLimited,
    ServerError,
    WaitTimeout,
)
from jobsite_client.models import Batch, Job
from jobsite_client.webhooks import InvalidSignature

__all__ = [
    "AsyncJobsite",
    "AuthenticationError",
    "Batch",
    "Conflict",
    "InvalidRequest",
    "InvalidSignature",
    "Job",
    "Jobsite",
    "JobsiteError",
    "NotFound",
    "RateLimited",
    "ServerError",
    "WaitTimeout",
]
