"""The per-process API key cache: no key query on a hit, revocation here at once, a
revocation elsewhere within the cache's lifetime."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import auth
from jobs.auth import api_key_revoke
from jobs.models import ApiKey
from tests.helpers import make_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached(settings):
    settings.JOBSITE_API_KEY_CACHE_SECONDS = 0.5
    auth._recent.clear()
    yield
    auth._recent.clear()


def key_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/jobs/").status_code == 200
    return sum('"jobs_apikey"' in q["sql"] and "SELECT" in q["sql"] for q in queries)


def test_a_cached_key_is_not_read_again(user, cached):
    client = make_client(user)
    # The first request reads the key and records its use, which forgets it once.
    assert key_queries(client) == 1
    assert key_queries(client) == 1
    assert key_queries(client) == 0
    assert key_queries(client) == 0


def test_revoking_in_this_process_takes_effect_at_once(user, cached):
    client = make_client(user)
    for _ in range(3):
        assert client.get("/api/v1/jobs/").status_code == 200
    for key in ApiKey.objects.filter(user=user):
        api_key_revoke(key)
    assert client.get("/api/v1/jobs/").status_code == 401


def test_revoking_elsewhere_takes_effect_within_the_cache_lifetime(user, cached):
    client = make_client(user)
    for _ in range(3):
        assert client.get("/api/v1/jobs/").status_code == 200
    # Another process revokes: this one learns it when its cached row expires.
    ApiKey.objects.filter(user=user).update(revoked_at="2020-01-01T00:00:00Z")
    time.sleep(0.6)
    assert client.get("/api/v1/jobs/").status_code == 401


def test_a_deactivated_user_is_refused_after_the_cache_lifetime(user, cached):
    client = make_client(user)
    for _ in range(3):
        assert client.get("/api/v1/jobs/").status_code == 200
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    time.sleep(0.6)
    assert client.get("/api/v1/jobs/").status_code == 401


def test_unknown_prefixes_cannot_grow_the_cache_without_bound(user, cached, monkeypatch):
    monkeypatch.setattr(auth, "_RECENT_MAX", 5)
    anonymous = make_client(user)
    for i in range(20):
        anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer jsk_nosuch{i:04d}.secret")
        assert anonymous.get("/api/v1/jobs/").status_code == 401
    assert len(auth._recent) <= 5
