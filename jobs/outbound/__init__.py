"""Bounded, SSRF-safe outbound HTTP: downloads of user-supplied URLs (a job's ``file_url``,
later web pages) and, from ``jobs`` itself, webhook deliveries.

It lives in ``jobs`` rather than beside the pipelines because both need it and ``jobs``
must never import ``processing``. The URL comes from whoever submits the job, and the
worker runs inside our network, so every hop (the first request and each redirect) is
resolved once, every resolved address is checked against the address policy
(``check_address``), and the connection goes to that checked address, never to a second
DNS answer (DNS rebinding). Time, size and redirects are bounded for the whole fetch.
Failures are ``FetchError`` (a ``JobError``) with a code the Job row can carry and a
message a user can act on.

- ``addresses``: the address policy (which IPs are refused) and the allow list.
- ``client``: resolving, pinning and following redirects; ``fetch`` itself.
- ``bounds``: the deadline over all hops and the capped reading and decoding of a body.
- ``proxy``: a local forward proxy holding a headless browser to the same policy
  (``render_js`` web pages: ``processing.web.render``).
"""

from jobs.outbound.addresses import (
    IPAddress,
    allowed_hosts_from_settings,
    check_address,
    parse_ip_literal,
)
from jobs.outbound.client import FetchResult, PostResult, check_url, fetch, filename_hint, post
from jobs.outbound.errors import FetchError

__all__ = [
    "FetchError",
    "FetchResult",
    "IPAddress",
    "PostResult",
    "allowed_hosts_from_settings",
    "check_address",
    "check_url",
    "fetch",
    "filename_hint",
    "parse_ip_literal",
    "post",
]
