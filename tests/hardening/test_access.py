"""Access, as a hostile client found it: live links that outlived their key, the live app
answering any Host, unthrottled guessing of keys, tokens and admin passwords, and echo
allocating what it liked. Against the real server (uvicorn, a real worker) where the
defect was there; other clients come from other loopback addresses (127.0.0.0/8)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from jobs import registry, taskbackend
from jobs.models import ApiKey
from tests import sample_tasks
from tests.helpers import WebServer, make_client, wait_status

# A small failure budget, on a server of its own: the session's server keeps the default.
LIMIT, WINDOW = 3, 3
LIMITS = {
    "JOBSITE_AUTH_FAILURE_LIMIT": str(LIMIT),
    "JOBSITE_AUTH_FAILURE_WINDOW": str(WINDOW),
    "FORWARDED_ALLOW_IPS": "",  # no trusted proxy: the socket's address is the client's
}
OTHER_ADDRESS = "127.0.0.2"
WRONG_KEY = {"Authorization": "Bearer jsk_nosuchkey0.wrong"}


@pytest.fixture(scope="module")
def guarded_server(platform) -> Iterator[WebServer]:
    web = platform.web(**LIMITS)
    yield web
    web.stop()


@pytest.fixture
def guarded(guarded_server, live) -> WebServer:
    return guarded_server


def bearer(api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.api_key}"}


def from_address(address: str) -> httpx.Client:
    """A client whose connections come from ``address``, not 127.0.0.1."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def scheduled_job(api) -> str:
    run_at = (timezone.now() + timedelta(hours=1)).isoformat()
    return api.post("/api/v1/jobs/", {"type": "echo", "run_at": run_at}, format="json").json()[
        "job_id"
    ]


def completed_job(api) -> dict:
    body = {"type": "echo", "params": {"payload": {"secret": "the result"}}}
    job_id = api.post("/api/v1/jobs/", body, format="json").json()["job_id"]
    wait_status(job_id, "completed")
    return api.get(f"/api/v1/jobs/{job_id}/").json()


def token_of(url: str) -> str:
    return parse_qs(urlparse(url).query)["token"][0]


def live_answers(web: WebServer, job_id: str, token: str) -> dict[str, httpx.Response]:
    """The page, a long-poll and a stream, each opened with the live token."""
    query = urlencode({"token": token})
    return {
        "page": httpx.get(f"{web.url}/jobs/{job_id}/?{query}"),
        "poll": httpx.get(f"{web.url}/api/v1/jobs/{job_id}/poll/?{query}&timeout=1"),
        # The job is terminal: the stream sends its state and ends.
        "stream": httpx.get(f"{web.url}/api/v1/jobs/{job_id}/stream/?{query}", timeout=10),
    }


# --- 10. a live link is worth no more than the key (or user) that made it --------------


def revoke_key(user) -> None:
    ApiKey.objects.filter(user=user).update(revoked_at=timezone.now())


def deactivate_user(user) -> None:
    type(user).objects.filter(pk=user.pk).update(is_active=False)


@pytest.mark.worker
@pytest.mark.parametrize("withdraw", [revoke_key, deactivate_user], ids=["revoked", "inactive"])
def test_a_live_link_stops_working_with_its_key_or_its_user(web, user, withdraw):
    api = make_client(user)
    job = completed_job(api)
    token = token_of(job["status_page"])
    before = live_answers(web, job["job_id"], token)
    assert [r.status_code for r in before.values()] == [200, 200, 200]
    assert all("the result" in r.text for r in before.values())

    withdraw(user)
    after = live_answers(web, job["job_id"], token)
    assert after["page"].status_code == 404
    assert after["poll"].status_code == after["stream"].status_code == 401
    assert after["poll"].json()["error"]["code"] == "authentication_failed"
    assert not any("the result" in r.text for r in after.values())


@pytest.mark.worker
def test_a_link_answers_to_the_key_that_made_it_not_to_the_users_other_keys(web, user):
    api, other_key = make_client(user), make_client(user)
    job = completed_job(api)
    mine = token_of(job["status_page"])
    theirs = token_of(other_key.get(f"/api/v1/jobs/{job['job_id']}/").json()["status_page"])
    ApiKey.objects.filter(user=user, prefix=api.api_key[4:].split(".")[0]).update(
        revoked_at=timezone.now()
    )
    poll = f"{web.url}/api/v1/jobs/{job['job_id']}/poll/"
    assert httpx.get(poll, params={"token": mine, "timeout": 1}).status_code == 401
    assert httpx.get(poll, params={"token": theirs, "timeout": 1}).status_code == 200


@pytest.mark.worker
def test_a_session_users_link_follows_the_user(web, user, django_user_model, client):
    """The admin's and the owner's page (a session) mint links bound to the user: staff
    see any job only while staff, and nobody once deactivated."""
    job = completed_job(make_client(user))
    staff = django_user_model.objects.create_user("operator", password="x", is_staff=True)
    client.force_login(staff)
    page = client.get(f"/jobs/{job['job_id']}/")
    assert page.status_code == 200
    config = json.loads(re.search(rb'id="job-config"[^>]*>(.*?)</script>', page.content)[1])
    token = token_of(config["poll_url"])
    poll = f"{web.url}/api/v1/jobs/{job['job_id']}/poll/"
    assert httpx.get(poll, params={"token": token, "timeout": 1}).status_code == 200
    django_user_model.objects.filter(pk=staff.pk).update(is_staff=False)
    assert httpx.get(poll, params={"token": token, "timeout": 1}).status_code == 404
    django_user_model.objects.filter(pk=staff.pk).update(is_active=False)
    assert httpx.get(poll, params={"token": token, "timeout": 1}).status_code == 401


@pytest.mark.django_db
def test_a_live_token_is_short_and_bound_to_its_job(api):
    one, two = scheduled_job(api), scheduled_job(api)
    token = token_of(api.get(f"/api/v1/jobs/{one}/").json()["status_page"])
    assert len(token) <= 64, token
    assert api.get(f"/jobs/{two}/", {"token": token}).status_code == 404


# --- 12. the live app's Host check ------------------------------------------------------


@pytest.mark.worker
def test_the_live_app_refuses_a_host_as_django_does(web, api):
    job_id = scheduled_job(api)
    evil = {**bearer(api), "Host": "evil.example"}
    django = httpx.get(f"{web.url}/api/v1/jobs/{job_id}/", headers=evil)
    assert django.status_code == 400
    for path in (f"/api/v1/jobs/{job_id}/poll/", f"/api/v1/jobs/status/{job_id}/stream"):
        refused = httpx.get(f"{web.url}{path}", headers=evil, params={"timeout": 1})
        assert refused.status_code == 400, path
        assert (
            refused.json()
            == django.json()
            == {"error": {"code": "bad_request", "message": "Bad request"}}
        )
    allowed = {**bearer(api), "Host": f"localhost:{web.port}"}
    poll = f"{web.url}/api/v1/jobs/{job_id}/poll/"
    answer = httpx.get(poll, headers=allowed, params={"current_status": "running"})
    assert answer.status_code == 200 and answer.json()["status"] == "scheduled"


# --- 12. failed authentication is throttled per client address --------------------------


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW + 1
    assert response.json()["error"]["code"] == "throttled"


@pytest.mark.worker
def test_wrong_api_keys_from_one_address_are_throttled_not_other_addresses(guarded, api):
    jobs = f"{guarded.url}/api/v1/jobs/"
    for _ in range(LIMIT):
        assert httpx.get(jobs, headers=WRONG_KEY).status_code == 401
    assert_throttled(httpx.get(jobs, headers=WRONG_KEY))
    # While locked out, the address learns nothing about any key, valid ones included.
    locked = httpx.get(jobs, headers=bearer(api))
    assert_throttled(locked)
    with from_address(OTHER_ADDRESS) as other:
        assert other.get(jobs, headers=bearer(api)).status_code == 200
        assert other.get(jobs, headers=WRONG_KEY).status_code == 401  # its own budget
    time.sleep(int(locked.headers["Retry-After"]))
    assert httpx.get(jobs, headers=bearer(api)).status_code == 200


@pytest.mark.worker
def test_wrong_keys_and_tokens_at_the_live_endpoints_and_page_are_throttled(guarded, api):
    job_id = scheduled_job(api)
    poll = f"{guarded.url}/api/v1/jobs/{job_id}/poll/"
    now = {"current_status": "running"}  # answers at once: the job is scheduled
    assert httpx.get(poll, headers=WRONG_KEY, params=now).status_code == 401
    stream = f"{guarded.url}/api/v1/jobs/{job_id}/stream/"
    assert httpx.get(stream, params={"token": "key:1:forged:forged"}).status_code == 401
    page = f"{guarded.url}/jobs/{job_id}/"
    assert httpx.get(page, params={"token": "forged"}).status_code == 404
    assert_throttled(httpx.get(poll, headers=bearer(api), params=now))
    refused_page = httpx.get(page, params={"token": "forged"})
    assert refused_page.status_code == 429 and int(refused_page.headers["Retry-After"]) >= 1
    with from_address(OTHER_ADDRESS) as other:
        answer = other.get(poll, headers=bearer(api), params=now)
        assert answer.status_code == 200 and answer.json()["status"] == "scheduled"


def admin_login(client: httpx.Client, password: str) -> httpx.Response:
    form = client.get("/admin/login/").text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
    return client.post(
        "/admin/login/?next=/admin/",
        data={"username": "root", "password": password, "csrfmiddlewaretoken": csrf},
    )


@pytest.mark.worker
def test_wrong_admin_passwords_from_one_address_are_throttled(guarded, django_user_model):
    django_user_model.objects.create_superuser("root", password="the-right-one")
    with httpx.Client(base_url=guarded.url, timeout=30) as here:
        for _ in range(LIMIT):
            answer = admin_login(here, "wrong")
            assert answer.status_code == 200 and "Please enter the correct" in answer.text
        for password in ("wrong", "the-right-one"):
            refused = admin_login(here, password)
            assert refused.status_code == 429, refused.text
            assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW
    with httpx.Client(
        base_url=guarded.url, transport=httpx.HTTPTransport(local_address=OTHER_ADDRESS)
    ) as there:
        answer = admin_login(there, "the-right-one")
        assert answer.status_code == 302 and answer.headers["location"] == "/admin/"


@pytest.mark.django_db
def test_the_failure_throttle_is_off_at_zero_and_counts_an_ipv6_network_as_one(
    settings, monkeypatch
):
    from rest_framework.test import APIClient

    from jobs import auth

    monkeypatch.setattr(auth, "_store_down_until", 0.0, raising=False)  # after other tests
    settings.JOBSITE_AUTH_FAILURE_LIMIT = 2
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION=WRONG_KEY["Authorization"])
    for host in ("2001:db8::1", "2001:db8::2"):
        assert guesser.get("/api/v1/jobs/", REMOTE_ADDR=host).status_code == 401
    assert guesser.get("/api/v1/jobs/", REMOTE_ADDR="2001:db8::3").status_code == 429
    assert guesser.get("/api/v1/jobs/", REMOTE_ADDR="2001:db8:0:1::1").status_code == 401
    settings.JOBSITE_AUTH_FAILURE_LIMIT = 0
    assert guesser.get("/api/v1/jobs/", REMOTE_ADDR="2001:db8::3").status_code == 401


# --- 12. memory: a per-job limit by default, and echo bounded by it -----------------------


def test_every_job_type_has_a_memory_limit_by_default():
    limits = {job_type.name: job_type.memory_limit_mb for job_type in registry.public_types()}
    assert all(limit > 0 for limit in limits.values()), limits
    default = django_settings.JOBSITE_JOB_MEMORY_LIMIT_MB
    assert limits["echo"] == default
    assert taskbackend.task_type(sample_tasks.add).memory_limit_mb == default  # Django tasks too


@pytest.mark.django_db
def test_echo_may_ask_for_no_more_memory_than_its_limit(api):
    limit = registry.get("echo").memory_limit_mb
    run_at = (timezone.now() + timedelta(hours=1)).isoformat()
    for allocate_mb in (65_536, limit + 1):
        body = {"type": "echo", "params": {"allocate_mb": allocate_mb}, "run_at": run_at}
        refused = api.post("/api/v1/jobs/", body, format="json")
        assert refused.status_code == 400, allocate_mb
        assert "params.allocate_mb" in refused.json()["error"]["details"]
    body = {"type": "echo", "params": {"allocate_mb": limit}, "run_at": run_at}
    assert api.post("/api/v1/jobs/", body, format="json").status_code == 202
