"""API-key authentication and per-key throttling.

Keys look like ``jsk_<prefix>.<secret>``: the ``jsk_`` marks them for secret scanners,
the prefix finds the row by a unique index, and only a SHA-256 of the whole key is
stored. A slow password hash buys nothing for 190 random bits and would cost every
request (the reason djangorestframework-api-key 3 moved off password hashers); we keep
our own small model because that package authorises requests but does not authenticate
a user, and every job here belongs to one.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import string
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from jobs.errors import JobsiteError
from jobs.models import ApiKey

log = logging.getLogger(__name__)

KEY_MARK = "jsk_"
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
# last_used_at is written at most this often per key: no write per request.
_LAST_USED_RESOLUTION = timedelta(minutes=5)


class InvalidApiKey(JobsiteError):
    status = 401
    code = "authentication_failed"


class TooManyFailures(JobsiteError):
    """This address failed to authenticate too often: it may try again in ``retry_after``."""

    status = 429
    code = "throttled"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "Too many failed authentication attempts from this address; "
            f"try again in {math.ceil(retry_after)} seconds."
        )
        self.retry_after = retry_after


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> tuple[str, str, str]:
    """Return ``(prefix, key, hashed_key)`` for a new key."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(10))
    key = f"{KEY_MARK}{prefix}.{secrets.token_urlsafe(32)}"
    return prefix, key, hash_key(key)


def api_key_create(*, user: Any, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    prefix, key, hashed = generate_key()
    api_key = ApiKey.objects.create(user=user, name=name, prefix=prefix, hashed_key=hashed)
    return api_key, key


def api_key_revoke(api_key: ApiKey) -> None:
    """Revoke a key at once in every web process (its cached copy is dropped too)."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    forget_key(api_key.prefix)


def key_from_headers(request: Request) -> str | None:
    return key_from_header_values(
        request.META.get("HTTP_AUTHORIZATION", ""), request.META.get("HTTP_X_API_KEY", "")
    )


def key_from_header_values(authorization: str, x_api_key: str) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return x_api_key.strip() or None


# prefix -> (the row with its user, when it was read). See _cached_key.
_recent: dict[str, tuple[ApiKey | None, float]] = {}
_RECENT_MAX = 10_000


def _cached_key(prefix: str) -> ApiKey | None:
    """The key row for a prefix, read at most once per ``JOBSITE_API_KEY_CACHE_SECONDS`` in
    this process: the lookup was a fifth of an API request's CPU. The price: a key revoked
    (or a user deactivated) elsewhere still works here for up to that many seconds;
    revoking in this process forgets the key at once (``forget_key``)."""
    ttl = settings.JOBSITE_API_KEY_CACHE_SECONDS
    now = time.monotonic()
    hit = _recent.get(prefix)
    if hit is not None and now - hit[1] < ttl:
        return _own_copy(hit[0])
    api_key = next(iter(ApiKey.objects.select_related("user").filter(prefix=prefix)[:1]), None)
    if ttl > 0:
        if len(_recent) >= _RECENT_MAX:  # unknown prefixes could otherwise grow it forever
            _recent.clear()
        _recent[prefix] = (api_key, now)
    return _own_copy(api_key)


def _own_copy(api_key: ApiKey | None) -> ApiKey | None:
    """Each request its own instances: views may annotate ``request.user``."""
    if api_key is None:
        return None
    mine = copy.copy(api_key)
    mine.user = copy.copy(api_key.user)
    return mine


def forget_key(prefix: str) -> None:
    _recent.pop(prefix, None)


def api_key_for(key: str) -> ApiKey:
    """The active key row for a presented key, with its user; else ``InvalidApiKey``."""
    if not key.startswith(KEY_MARK) or "." not in key:
        raise InvalidApiKey("Malformed API key")
    prefix = key[len(KEY_MARK) :].split(".", 1)[0]
    api_key = _cached_key(prefix)
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, hash_key(key)):
        raise InvalidApiKey("Invalid API key")
    if not api_key.is_active or not api_key.user.is_active:
        raise InvalidApiKey("API key revoked or expired")
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        forget_key(prefix)  # read again next time, with the new last_used_at
    return api_key


# --- failed authentication, counted per client address ----------------------------------


def client_network(address: str | None) -> str:
    """Whom failures count against: the client's address, or for IPv6 its /64 (what one
    host is usually given, so rotating addresses within it does not start afresh)."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return address or "unknown"
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(getattr(ip, "ipv4_mapped", None) or ip)


# One Redis client per process for the counters here (failures, rates): Django's cache
# API builds a client object per call, which cost an API request 0.3 ms of CPU.
_store_client: redis.Redis | None = None
# Monotonic time until which the store is taken for down (see _store).
_store_down_until = 0.0


def _store() -> redis.Redis | None:
    """The counters' Redis (``CACHE_URL``, 0.25 s timeouts), or None while it is taken for
    down: a stalled store must not hold every authenticated request, so after one failure
    nothing is counted, throttled or refused for 5 s. A throttle is not worth an outage."""
    global _store_client
    if time.monotonic() < _store_down_until:
        return None
    if _store_client is None:
        _store_client = redis.Redis.from_url(
            settings.CACHE_URL, socket_timeout=0.25, socket_connect_timeout=0.25
        )
    return _store_client


def _store_failed(exc: Exception) -> None:
    global _store_down_until
    _store_down_until = time.monotonic() + 5
    log.warning("Throttle and failure counters unavailable (%s); not used for 5 s", exc)


def failure_key(address: str | None) -> str:
    """The address's failure count; its TTL is what is left of its window."""
    return f"jobsite:auth-failures:{client_network(address)}"


def lockout_of(count: Any, ttl: Any, *, counting_this: bool = False) -> float | None:
    """Seconds an address with ``count`` failures (window ending in ``ttl``) must wait, or
    None if it may authenticate. An address is locked out once it has failed
    ``JOBSITE_AUTH_FAILURE_LIMIT`` times; ``counting_this``: ``count`` includes the
    attempt being answered (so that attempt itself is still answered as a failure)."""
    limit = settings.JOBSITE_AUTH_FAILURE_LIMIT
    before = int(count or 0) - (1 if counting_this else 0)
    if limit <= 0 or before < limit:
        return None
    return max(float(ttl or 0), 1.0)


def auth_lockout(address: str | None) -> float | None:
    """Seconds until ``address`` may authenticate again, or None: it may now (also while
    the counters are unavailable)."""
    if settings.JOBSITE_AUTH_FAILURE_LIMIT <= 0 or (store := _store()) is None:
        return None
    key = failure_key(address)
    try:
        count, ttl = store.pipeline(transaction=False).get(key).ttl(key).execute()
    except redis.RedisError as exc:
        _store_failed(exc)
        return None
    return lockout_of(count, ttl)


def auth_failure_record(address: str | None) -> float | None:
    """Count a failure (the first opens a window of ``JOBSITE_AUTH_FAILURE_WINDOW``
    seconds; atomic ``INCR``: parallel guesses all count), and say how long the address
    must now wait (None: it may try again)."""
    if settings.JOBSITE_AUTH_FAILURE_LIMIT <= 0 or (store := _store()) is None:
        return None
    key = failure_key(address)
    window = settings.JOBSITE_AUTH_FAILURE_WINDOW
    try:
        count, _, ttl = (
            store.pipeline(transaction=False)
            .incr(key)
            .expire(key, window, nx=True)
            .ttl(key)
            .execute()
        )
    except redis.RedisError as exc:
        _store_failed(exc)
        return None
    return lockout_of(count, ttl, counting_this=True)


@contextlib.contextmanager
def failure_guard(address: str | None) -> Iterator[None]:
    """Around checking presented credentials (an API key, a live token): an address past
    ``JOBSITE_AUTH_FAILURE_LIMIT`` failures this window gets ``TooManyFailures`` before
    anything is checked (so it learns nothing about any key), and an ``InvalidApiKey``
    inside counts one failure against it."""
    wait = auth_lockout(address)
    if wait is not None:
        raise TooManyFailures(wait)
    try:
        yield
    except InvalidApiKey:
        auth_failure_record(address)
        raise


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        """A valid key from an address past its failure limit is refused by the throttle
        (``ApiKeyRateThrottle``, in the round trip it makes anyway), an invalid one here:
        both get the same 429, so a locked-out address learns nothing about any key."""
        key = key_from_headers(request)
        if key is None:
            return None
        address = request.META.get("REMOTE_ADDR")
        try:
            api_key = api_key_for(key)
        except InvalidApiKey as exc:
            if (wait := auth_failure_record(address)) is not None:
                raise exceptions.Throttled(
                    wait=wait, detail=TooManyFailures(wait).message
                ) from None
            raise exceptions.AuthenticationFailed(exc.message) from None
        request._request.jobsite_check_lockout = address
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def actor_name(user: Any, api_key: ApiKey | None = None) -> str:
    """Who is acting, as the event log records it: the key when one was used (its prefix,
    never the secret), else the user. Every actor a person causes is written here."""
    if api_key is not None:
        return f"api_key:{KEY_MARK}{api_key.prefix}"
    return f"user:{user.get_username()}"


def actor_for(request: Request) -> str:
    """The actor of an API request."""
    auth = getattr(request, "auth", None)
    return actor_name(request.user, auth if isinstance(auth, ApiKey) else None)


class ApiKeyRateThrottle(BaseThrottle):
    """One budget per API key (per user for browser sessions), shared by every web process.

    A fixed-window counter in Redis: one round trip (INCR and EXPIRE, pipelined), O(1)
    however high the rate. DRF's SimpleRateThrottle keeps, and pickles on every request,
    the list of all request times in the window: at 6,000/min that is a 6,000-item list.
    If Redis is down, requests pass: throttling is not worth an outage.
    """

    scope = "api_key"
    THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def ident(self, request: Request) -> str:
        if isinstance(request.auth, ApiKey):
            return f"key:{request.auth.pk}"
        if request.user is not None and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return f"ip:{self.get_ident(request)}"

    def allow_request(self, request: Request, view: Any) -> bool:
        allowed, period = SimpleRateThrottle.parse_rate(None, self.THROTTLE_RATES[self.scope])
        now = time.time()
        key = f"jobsite:throttle:{self.ident(request)}:{int(now // period)}"
        if (store := _store()) is None:
            return True  # the store failed a moment ago: no request waits on it meanwhile
        pipeline = store.pipeline(transaction=False).incr(key).expire(key, period + 1)
        # A key that authenticated from an address past its failure limit: refused too.
        address = getattr(request._request, "jobsite_check_lockout", False)
        if address is not False and settings.JOBSITE_AUTH_FAILURE_LIMIT > 0:
            pipeline.get(failure_key(address)).ttl(failure_key(address))
        try:
            count, _, *failures = pipeline.execute()
        except redis.RedisError as exc:
            _store_failed(exc)
            return True
        if failures and (wait := lockout_of(*failures)) is not None:
            raise exceptions.Throttled(wait=wait, detail=TooManyFailures(wait).message)
        if count <= allowed:
            return True
        self.retry_after = period - now % period
        return False

    def wait(self) -> float | None:
        return self.retry_after


# --- live-page links: a signed, job-scoped, read-only token -------------------------------
#
# A link is worth no more than what made it: the token names the API key that asked for it
# (or, from a browser session, the user), and every use checks that the key is still active
# and its user too. The job is in the signature's salt, not in the token.

_LIVE_SALT = "jobsite.live"


def _live_signer(job_id: Any) -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=f"{_LIVE_SALT}:{job_id}")


def live_principal(request: Any) -> str:
    """Whom a link minted for ``request`` answers to: the API key that authenticated it
    (``key:<pk>``), else its user (``user:<pk>``, a browser session)."""
    api_key = getattr(request, "auth", None)  # a Django request (the page) has none
    if isinstance(api_key, ApiKey):
        return f"key:{api_key.pk}"
    return f"user:{request.user.pk}"


def live_token(job_id: Any, principal: str) -> str:
    """Lets a browser's EventSource (which cannot send headers) follow one job."""
    return _live_signer(job_id).sign(principal)


def live_token_holder(token: str, job_id: Any) -> tuple[Any, str]:
    """The user behind a token valid for this job, and its principal (``key:<pk>`` or
    ``user:<pk>``). ``InvalidApiKey`` if it is forged, expired or for another job, or if
    its key was revoked or expired or its user deactivated since."""
    try:
        principal = _live_signer(job_id).unsign(token, max_age=settings.JOBSITE_LIVE_TOKEN_MAX_AGE)
    except signing.BadSignature:
        raise InvalidApiKey("Invalid or expired live token") from None
    kind, _, pk = principal.partition(":")
    if kind == "key":
        api_key = ApiKey.objects.select_related("user").filter(pk=pk).first()
        if api_key is not None and api_key.is_active and api_key.user.is_active:
            return api_key.user, principal
    elif kind == "user":
        user = get_user_model().objects.filter(pk=pk, is_active=True).first()
        if user is not None:
            return user, principal
    raise InvalidApiKey("The live token's API key or user is no longer active")


# --- the admin's login form: django-axes, on the same address and limits -----------------


def axes_client_address(request: HttpRequest) -> str:
    return client_network(request.META.get("REMOTE_ADDR"))


def axes_failure_limit(request: HttpRequest, credentials: Any) -> int:
    """Axes locks out at the failure that reaches its limit; the API at the attempt after
    the limit. One more here, so both answer N failures as failures, then 429."""
    return settings.JOBSITE_AUTH_FAILURE_LIMIT + 1


def axes_cool_off(request: HttpRequest | None) -> timedelta:
    return timedelta(seconds=settings.JOBSITE_AUTH_FAILURE_WINDOW)


def axes_lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """A 429 with ``Retry-After`` (axes's own answer carries no ``Retry-After``)."""
    wait = settings.JOBSITE_AUTH_FAILURE_WINDOW
    return HttpResponse(
        "Too many failed login attempts from this address; "
        f"try again in {wait} seconds without a failed attempt.\n",
        status=429,
        content_type="text/plain; charset=utf-8",
        headers={"Retry-After": str(wait)},
    )
