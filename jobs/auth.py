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
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import caches
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


# Monotonic time until which the counters' cache is taken for down (see _counters).
_counters_down_until = 0.0


def _counters() -> Any:
    """The cache that counts failures (``CACHES["auth"]``: short timeouts), or None while
    it is taken for down: a stalled cache must not hold every authenticated request, so
    after one failure nothing is counted or refused for 5 s. A throttle is not worth an
    outage."""
    return None if time.monotonic() < _counters_down_until else caches["auth"]


def _counters_failed(exc: Exception) -> None:
    global _counters_down_until
    _counters_down_until = time.monotonic() + 5
    log.warning("Auth failure counters unavailable (%s); not counted for 5 s", exc)


def _failure_keys(address: str | None) -> tuple[str, str]:
    """The address's failure count, and when its first failure (its window) began."""
    base = f"jobsite:auth-failures:{client_network(address)}"
    return base, f"{base}:since"


def auth_lockout(address: str | None) -> float | None:
    """Seconds until ``address`` may authenticate again, or None: it may now (also while
    the counters are unavailable)."""
    limit = settings.JOBSITE_AUTH_FAILURE_LIMIT
    if limit <= 0 or (cache := _counters()) is None:
        return None
    count_key, since_key = _failure_keys(address)
    try:
        if cache.get(count_key, 0) < limit:  # the one read a valid key pays
            return None
        since = cache.get(since_key) or time.time()
    except Exception as exc:
        _counters_failed(exc)
        return None
    return max(since + settings.JOBSITE_AUTH_FAILURE_WINDOW - time.time(), 1.0)


def auth_failure_record(address: str | None) -> None:
    """Count a failure; the first one opens a window of ``JOBSITE_AUTH_FAILURE_WINDOW``
    seconds, and the count goes with it (atomic ``INCR``: parallel guesses all count)."""
    if settings.JOBSITE_AUTH_FAILURE_LIMIT <= 0 or (cache := _counters()) is None:
        return
    count_key, since_key = _failure_keys(address)
    window = settings.JOBSITE_AUTH_FAILURE_WINDOW
    try:
        if cache.add(count_key, 1, window):
            cache.set(since_key, time.time(), window)
        else:
            cache.incr(count_key)
    except ValueError:  # the window closed between add and incr
        pass
    except Exception as exc:
        _counters_failed(exc)


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


# The key that authenticated the current request (see ``live_principal``).
_request_key: ContextVar[ApiKey | None] = ContextVar("jobsite_request_key", default=None)


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        _request_key.set(None)
        key = key_from_headers(request)
        if key is None:
            return None
        try:
            with failure_guard(request.META.get("REMOTE_ADDR")):
                api_key = api_key_for(key)
        except TooManyFailures as exc:
            raise exceptions.Throttled(
                wait=exc.retry_after, detail="Too many failed authentication attempts."
            ) from None
        except InvalidApiKey as exc:
            raise exceptions.AuthenticationFailed(exc.message) from None
        _request_key.set(api_key)
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def actor_for(request: Request) -> str:
    """Who is acting, as the event log records it."""
    if isinstance(request.auth, ApiKey):
        return f"api_key:{KEY_MARK}{request.auth.prefix}"
    return f"user:{request.user.get_username()}"


class ApiKeyRateThrottle(BaseThrottle):
    """One budget per API key (per user for browser sessions), shared by every web process.

    A fixed-window counter in Redis: one round trip (INCR and EXPIRE, pipelined), O(1)
    however high the rate. DRF's SimpleRateThrottle keeps, and pickles on every request,
    the list of all request times in the window: at 6,000/min that is a 6,000-item list.
    If Redis is down, requests pass: throttling is not worth an outage.
    """

    scope = "api_key"
    THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    _client: redis.Redis | None = None
    _down_until = 0.0  # monotonic time until which the store is taken for down

    def __init__(self) -> None:
        self.retry_after: float | None = None

    @classmethod
    def client(cls) -> redis.Redis:
        if cls._client is None:
            cls._client = redis.Redis.from_url(
                settings.CACHE_URL, socket_timeout=0.25, socket_connect_timeout=0.25
            )
        return cls._client

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
        if time.monotonic() < ApiKeyRateThrottle._down_until:
            return True  # the store failed a moment ago: no request waits on it meanwhile
        try:
            count, _ = self.client().pipeline().incr(key).expire(key, period + 1).execute()
        except redis.RedisError as exc:
            log.warning("Throttle store unavailable (%s); requests allowed for 5 s", exc)
            ApiKeyRateThrottle._down_until = time.monotonic() + 5
            return True
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


def live_principal(user_id: Any) -> str:
    """Whom a link minted in this request answers to: the API key that authenticated the
    request when it is ``user_id``'s (``key:<pk>``), else the user (``user:<pk>``)."""
    api_key = _request_key.get()
    if api_key is not None and api_key.user_id == user_id:
        return f"key:{api_key.pk}"
    return f"user:{user_id}"


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
