"""The one error every outbound request ends in when it does not succeed.

Its own module so the address policy and the client can both raise it without importing
each other, and so callers can catch it without loading httpx.
"""

from __future__ import annotations

from jobs.errors import JobError


class FetchError(JobError):
    """A download that did not happen. Codes: ``bad_url`` (unparseable, not http(s), with
    credentials), ``url_refused`` (the address policy), ``connect_error`` (DNS, TCP, TLS;
    retryable unless the name does not exist or the certificate is bad), ``timeout``
    (retryable), ``too_large``, ``too_many_redirects``, ``http_error`` (retryable for 5xx,
    408 and 429), ``bad_response`` (a Content-Encoding we cannot undo safely)."""

    code = "fetch_error"
