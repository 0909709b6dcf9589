"""One owner's big rows must not exhaust the shared web process: params and results have
size limits, and list pages do not carry them. (Before: 100 echo jobs with 1 MB payloads
made ``GET /jobs/?limit=100`` a 200 MB response; four in parallel took the process to
3.2 GB, and it stayed there.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psutil
import pytest
import requests
from django.conf import settings
from django.utils import timezone

from jobs.models import Job, JobStatus
from tests import sample_tasks
from tests.helpers import wait_status

pytestmark = [pytest.mark.worker]


def test_params_over_the_limit_are_refused_at_create(web, api):
    limit = settings.JOBSITE_MAX_PARAMS_BYTES
    response = requests.post(
        f"{web.url}/api/v1/jobs/",
        json={"type": "echo", "params": {"payload": "x" * limit}},
        headers={"Authorization": f"Bearer {api.api_key}"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "params_too_large" and "JOBSITE_MAX_PARAMS_BYTES" in error["message"]
    assert not Job.objects.exists()


def test_a_result_over_the_limit_fails_the_job_with_a_clear_error(live):
    result = sample_tasks.big_result.enqueue(settings.JOBSITE_MAX_RESULT_BYTES + 1)
    job = wait_status(result.id, JobStatus.FAILED)
    assert job.error_code == "result_too_large"
    assert "JOBSITE_MAX_RESULT_BYTES" in job.error_message and job.result is None
    small = sample_tasks.big_result.enqueue(1000)
    assert wait_status(small.id, JobStatus.COMPLETED).result == "x" * 1000


def test_list_pages_do_not_carry_params_or_results(web, api):
    payload = "p" * (settings.JOBSITE_MAX_PARAMS_BYTES - 1000)
    run_at = (timezone.now() + timedelta(hours=1)).isoformat()
    for _ in range(100):
        created = api.post(
            "/api/v1/jobs/",
            {"type": "echo", "params": {"payload": payload}, "run_at": run_at},
            format="json",
        )
        assert created.status_code == 202
    server = psutil.Process(web.proc.pid)
    before = server.memory_info().rss
    url = f"{web.url}/api/v1/jobs/?limit=100"
    headers = {"Authorization": f"Bearer {api.api_key}"}

    def page() -> requests.Response:
        return requests.get(url, headers=headers, timeout=30)

    with ThreadPoolExecutor(4) as pool:
        pages = list(pool.map(lambda _: page(), range(8)))
    for response in pages:
        assert response.status_code == 200
        jobs = response.json()["results"]
        assert len(jobs) == 100
        assert all("params" not in job and "result" not in job for job in jobs)
        assert len(response.content) < 200 * 1024, f"a page of {len(response.content)} bytes"
    assert server.memory_info().rss - before < 50 * 1024 * 1024
    one = requests.get(f"{web.url}/api/v1/jobs/{jobs[0]['job_id']}/", headers=headers)
    assert one.json()["params"]["payload"] == payload  # a single job has them
