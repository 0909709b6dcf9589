"""API-key authentication and per-key throttling.

Keys look like ``jsk_<prefix>.<secret>``: the ``jsk_`` marks them for secret scanners,
the prefix finds the row by a unique index, and only a SHA-256 of the whole key is
stored. A slow password hash buys nothing for 190 random bits and would cost every
request (the reason djangorestframework-api-key 3 moved off password hashers); we keep
our own small model because that package authorises requests but does not authenticate
a user, and every job here belongs to one.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import secrets
import string
import time
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.core import signing
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


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        key = key_from_headers(request)
        if key is None:
            return None
        try:
            api_key = api_key_for(key)
        except InvalidApiKey as exc:
            raise exceptions.AuthenticationFailed(exc.message) from None
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

    def __init__(self) -> None:
        self.retry_after: float | None = None

    @classmethod
    def client(cls) -> redis.Redis:
        if cls._client is None:
            cls._client = redis.Redis.from_url(
                settings.CACHE_URL, socket_timeout=0.5, socket_connect_timeout=0.5
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
        try:
            count, _ = self.client().pipeline().incr(key).expire(key, period + 1).execute()
        except redis.RedisError as exc:
            log.warning("Throttle store unavailable (%s); request allowed", exc)
            return True
        if count <= allowed:
            return True
        self.retry_after = period - now % period
        return False

    def wait(self) -> float | None:
        return self.retry_after


# --- live-page links: a signed, job-scoped, read-only token -------------------------------

_LIVE_SALT = "jobsite.live"


def live_token(job_id: Any, user_id: Any) -> str:
    """Lets a browser's EventSource (which cannot send headers) follow one job."""
    return signing.dumps([str(job_id), user_id], salt=_LIVE_SALT, compress=True)


def live_token_user(token: str, job_id: Any) -> Any:
    """The user a token was minted for, if it is valid for this job; else None."""
    try:
        token_job, user_id = signing.loads(
            token, salt=_LIVE_SALT, max_age=settings.JOBSITE_LIVE_TOKEN_MAX_AGE
        )
    except (signing.BadSignature, ValueError, TypeError):
        return None
    return user_id if token_job == str(job_id) else None
