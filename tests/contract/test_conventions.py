"""What other job APIs' clients send and read, on every path: both spellings of a path,
``processing`` for ``running``, one timestamp format, and the live endpoints under WSGI."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import httpx
import pytest
import requests
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from jobs.models import JobStatus
from tests.helpers import wait_for, wait_status

pytestmark = [pytest.mark.worker]


def soon(seconds: float = 1.5) -> str:
    return (timezone.now() + timedelta(seconds=seconds)).isoformat()


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def api_routes(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple[str, object]]:
    """Every route under /api/v1/ with its view."""
    routes = []
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            routes += api_routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and (prefix + str(entry.pattern)).startswith("api/v1/"):
            routes.append((prefix + str(entry.pattern), entry.callback))
    return routes


def test_every_api_route_has_both_spellings_with_the_same_view():
    routes = api_routes()
    by_route = {route: view for route, view in routes}
    assert len(routes) > 20
    for route, view in routes:
        other = route[:-1] if route.endswith("/") else route + "/"
        assert by_route.get(other) is view, f"{route} has no twin {other} with the same view"


def test_paths_without_the_trailing_slash_answer_every_method(client_of, web, api):
    base, auth = web.url, {"Authorization": f"Bearer {api.api_key}"}
    created = requests.post(f"{base}/api/v1/jobs", json={"type": "echo"}, headers=auth, timeout=10)
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]
    wait_status(job_id, JobStatus.COMPLETED)
    for url in (
        f"/api/v1/jobs/{job_id}",  # KnowledgeSDK's and DocuRift's spelling
        f"/api/v1/jobs/{job_id}/",
        f"/api/v1/jobs/status/{job_id}/",
        f"/api/v1/jobs/{job_id}/events",
        "/api/v1/jobs",
        "/api/v1/job-types",
        "/api/v1/jobs/queue/stats/",
        "/api/v1/collections",
        "/api/v1/memories",
        "/api/v1/memories/search/?q=x",
    ):
        response = requests.get(base + url, headers=auth, timeout=10, allow_redirects=False)
        assert response.status_code == 200, (url, response.status_code, response.text[:200])
    for url in (f"/api/v1/jobs/{job_id}/poll", f"/api/v1/jobs/status/{job_id}/poll/"):
        response = requests.get(base + url, headers=auth, params={"timeout": 1}, timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "completed"
    with requests.get(
        f"{base}/api/v1/jobs/{job_id}/stream", headers=auth, stream=True, timeout=10
    ) as stream:
        assert stream.status_code == 200
        assert '"status": "completed"' in stream.text
    restarted = requests.post(f"{base}/api/v1/jobs/{job_id}/restart", headers=auth, timeout=10)
    assert restarted.status_code == 409  # reached the view: a completed job cannot restart
    collection = requests.post(
        f"{base}/api/v1/collections", json={"name": "c"}, headers=auth, timeout=10
    )
    assert collection.status_code == 201
    url = f"{base}/api/v1/collections/{collection.json()['id']}"
    assert requests.patch(url, json={"name": "d"}, headers=auth, timeout=10).json()["name"] == "d"
    assert requests.delete(url, headers=auth, timeout=10).status_code == 204


def test_processing_is_running_wherever_a_client_sends_a_status(client_of, web, api):
    auth = {"Authorization": f"Bearer {api.api_key}"}
    job_id = client_of(params={"duration_s": 4, "steps": 40})
    done = client_of()
    wait_status(job_id, JobStatus.RUNNING)
    wait_status(done, JobStatus.COMPLETED)
    listed = requests.get(
        f"{web.url}/api/v1/jobs/", params={"status": "processing"}, headers=auth, timeout=10
    ).json()["results"]
    assert [job["job_id"] for job in listed] == [job_id]
    assert listed[0]["status"] == "running"  # responses keep our word
    both = requests.get(
        f"{web.url}/api/v1/jobs/", params={"status": "processing,completed"}, headers=auth
    ).json()["results"]
    assert {job["job_id"] for job in both} == {job_id, done}
    started = time.monotonic()
    polled = requests.get(
        f"{web.url}/api/v1/jobs/{job_id}/poll",
        params={"current_status": "processing", "timeout": 1.5},
        headers=auth,
        timeout=10,
    )
    assert polled.status_code == 200 and polled.json()["status"] == "running"
    assert time.monotonic() - started >= 1.4  # "processing" is what it is: it waited
    bad = requests.get(f"{web.url}/api/v1/jobs/", params={"status": "busy"}, headers=auth)
    assert bad.status_code == 400 and "status" in bad.json()["error"]["details"]


def test_one_timestamp_format_in_every_response_and_event(client_of, web, api):
    auth = {"Authorization": f"Bearer {api.api_key}"}
    # Scheduled a moment ahead, so the stream is open before its first attempt fails.
    job_id = client_of(params={"duration_s": 0.3, "fail_times": 1}, run_at=soon())
    with httpx.stream(
        "GET", f"{web.url}/api/v1/jobs/{job_id}/stream/", headers=auth, timeout=30
    ) as stream:
        events = [line for line in stream.iter_lines() if line.startswith("data: ")]
    stamps = [re.search(r'"timestamp": "([^"]+)"', line)[1] for line in events]
    assert len(stamps) >= 3  # pending or running, retrying, ..., completed
    retrying = next(line for line in events if '"retrying"' in line)
    stamps.append(re.search(r'"next_retry_at": "([^"]+)"', retrying)[1])
    job = requests.get(f"{web.url}/api/v1/jobs/{job_id}/", headers=auth, timeout=10).json()
    stamps += [job[name] for name in ("created_at", "started_at", "completed_at", "updated_at")]
    events_page = requests.get(f"{web.url}/api/v1/jobs/{job_id}/events/", headers=auth).json()
    stamps += [event["at"] for event in events_page["results"]]
    listed = requests.get(f"{web.url}/api/v1/jobs/", headers=auth, timeout=10).json()
    stamps.append(listed["results"][0]["created_at"])
    collection = requests.post(
        f"{web.url}/api/v1/collections/", json={"name": "t"}, headers=auth, timeout=10
    ).json()
    stamps.append(collection["created_at"])
    bad = [stamp for stamp in stamps if not TIMESTAMP.match(stamp)]
    assert not bad, f"not in the one format: {bad}"


def test_under_wsgi_the_live_endpoints_say_to_serve_the_asgi_app(gunicorn, client_of, api):
    auth = {"Authorization": f"Bearer {api.api_key}"}
    job_id = client_of()
    status = wait_for(
        lambda: requests.get(f"{gunicorn.url}/api/v1/jobs/{job_id}", headers=auth, timeout=5),
        10,
        "gunicorn to answer",
    )
    assert status.status_code == 200
    for path in ("status/{id}/poll", "status/{id}/stream/", "{id}/poll/", "{id}/stream"):
        url = f"{gunicorn.url}/api/v1/jobs/{path.format(id=job_id)}"
        response = requests.get(url, headers=auth, timeout=10)
        assert response.status_code == 501, (url, response.status_code, response.text[:200])
        error = response.json()["error"]
        assert error["code"] == "needs_asgi" and "jobsite.asgi:application" in error["message"]
