"""Long-polling against the real ASGI server: early on change, at the timeout, validated."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Job

pytestmark = [pytest.mark.worker]


def scheduled_job(api) -> str:
    run_at = (timezone.now() + timedelta(hours=1)).isoformat()
    response = api.post("/api/v1/jobs/", {"type": "echo", "run_at": run_at}, format="json")
    return response.json()["job_id"]


def headers(api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.api_key}"}


def test_answers_at_once_when_the_status_already_differs(web, api):
    job_id = scheduled_job(api)
    started = time.monotonic()
    response = httpx.get(
        f"{web.url}/api/v1/jobs/status/{job_id}/poll",
        params={"timeout": 30, "current_status": "running"},
        headers=headers(api),
    )
    assert time.monotonic() - started < 2
    assert response.status_code == 200 and response.json()["status"] == "scheduled"
    # Same JSON as the status endpoint.
    status = api.get(f"/api/v1/jobs/status/{job_id}").json()
    assert set(response.json()) == set(status)


def test_returns_early_on_change(web, api):
    job_id = scheduled_job(api)

    def cancel() -> None:
        api.post(f"/api/v1/jobs/{job_id}/cancel/")
        connection.close()  # this thread's own connection: not left open on the test DB

    threading.Timer(0.7, cancel).start()
    started = time.monotonic()
    response = httpx.get(
        f"{web.url}/api/v1/jobs/{job_id}/poll/",
        params={"timeout": 30, "current_status": "scheduled"},
        headers=headers(api),
        timeout=40,
    )
    waited = time.monotonic() - started
    assert response.json()["status"] == "cancelled"
    assert 0.5 < waited < 5, waited


def test_returns_at_the_timeout_with_the_current_state(web, api):
    job_id = scheduled_job(api)
    started = time.monotonic()
    response = httpx.get(
        f"{web.url}/api/v1/jobs/status/{job_id}/poll",
        params={"timeout": 1, "current_status": "scheduled"},
        headers=headers(api),
    )
    assert 0.9 < time.monotonic() - started < 4
    assert response.status_code == 200 and response.json()["status"] == "scheduled"


def test_progress_change_wakes_a_poll_that_names_current_progress(web, api):
    response = api.post(
        "/api/v1/jobs/", {"type": "echo", "params": {"duration_s": 2, "steps": 4}}, format="json"
    )
    job_id = response.json()["job_id"]
    response = httpx.get(
        f"{web.url}/api/v1/jobs/status/{job_id}/poll",
        params={"timeout": 20, "current_status": "running", "current_progress": 0},
        headers=headers(api),
        timeout=30,
    )
    body = response.json()
    assert body["status"] != "running" or body["progress"] > 0


@pytest.mark.parametrize(
    "params",
    [
        {"timeout": 0},
        {"timeout": 301},
        {"timeout": "soon"},
        {"timeout": "nan"},
        {"current_status": "sleeping"},
        {"current_progress": 101},
        {"current_progress": "x"},
    ],
)
def test_bad_parameters_are_400(web, api, params):
    job_id = scheduled_job(api)
    response = httpx.get(
        f"{web.url}/api/v1/jobs/status/{job_id}/poll", params=params, headers=headers(api)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


def test_isolation_and_auth(web, api, other_api):
    job_id = scheduled_job(api)
    for path in (f"/api/v1/jobs/status/{job_id}/poll", f"/api/v1/jobs/{job_id}/stream/"):
        assert httpx.get(f"{web.url}{path}", headers=headers(other_api)).status_code == 404
        assert httpx.get(f"{web.url}{path}").status_code == 401
        bad = {"Authorization": "Bearer jsk_nope.nope"}
        assert httpx.get(f"{web.url}{path}", headers=bad).status_code == 401
    bad_id = httpx.get(f"{web.url}/api/v1/jobs/status/not-a-uuid/poll", headers=headers(api))
    assert bad_id.status_code == 404 and bad_id.json()["error"]["code"] == "not_found"
    post = httpx.post(f"{web.url}/api/v1/jobs/status/{job_id}/poll", headers=headers(api))
    assert post.status_code == 405
    assert Job.objects.get(pk=job_id).status == "scheduled"
