"""API-key authentication and per-key throttling.

Keys look like ``jsk_<prefix>.<secret>``: the ``jsk_`` marks them for secret scanners,
the prefix finds the row by a unique index, and only a SHA-256 of the whole key is
stored. A slow password hash buys nothing for 190 random bits and would cost every
request (the reason djangorestframework-api-key 3 moved off password hashers); we keep
our own small model because that package authorises requests but does not authenticate
a user, and every job here belongs to one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

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


def api_key_for(key: str) -> ApiKey:
    """The active key row for a presented key, with its user; else ``InvalidApiKey``."""
    if not key.startswith(KEY_MARK) or "." not in key:
        raise InvalidApiKey("Malformed API key")
    prefix = key[len(KEY_MARK) :].split(".", 1)[0]
    api_key = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, hash_key(key)):
        raise InvalidApiKey("Invalid API key")
    if not api_key.is_active or not api_key.user.is_active:
        raise InvalidApiKey("API key revoked or expired")
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
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


class ApiKeyRateThrottle(SimpleRateThrottle):
    """One budget per API key (per user for browser sessions), shared by every web process
    through the cache. If the cache is down, requests pass: throttling is not worth an
    outage."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # cache unreachable
            log.warning("Throttle cache unavailable (%s); request allowed", exc)
            return True


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
