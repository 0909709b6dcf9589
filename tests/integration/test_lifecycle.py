"""The lifecycle end to end: the API in this process, real worker and beat processes,
the real broker and the real database."""

from __future__ import annotations

import time

import pytest

from jobs.models import Job, JobStatus
from tests.helpers import wait_for, wait_status

pytestmark = [pytest.mark.worker]


def create(api, params, **extra):
    response = api.post("/api/v1/jobs/", {"type": "echo", "params": params, **extra}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def test_create_runs_to_completed_with_progress(live, api):
    job_id = create(api, {"duration_s": 1.2, "steps": 6, "payload": {"hello": "world"}})
    seen = set()

    def progressed():
        job = Job.objects.get(pk=job_id)
        if job.status == JobStatus.RUNNING:
            seen.add(job.progress)
        return job.status == JobStatus.COMPLETED

    wait_for(progressed, 20, "completion")
    assert any(0 < p < 100 for p in seen), seen
    body = api.get(f"/api/v1/jobs/status/{job_id}").json()
    assert body["status"] == "completed" and body["progress"] == 100
    assert body["result"] == {"hello": "world"} and body["attempts"] == 1
    assert body["current_step"] == "step 6 of 6" and body["duration"] >= 1.2
    events = api.get(f"/api/v1/jobs/{job_id}/events/").json()["results"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        ("", "pending"),
        ("pending", "running"),
        ("running", "completed"),
    ]


def test_failures_retry_with_backoff_then_succeed(live, api):
    job_id = create(api, {"fail_times": 2, "payload": 7}, max_retries=3)
    job = wait_status(job_id, JobStatus.COMPLETED)
    assert job.attempts == 3 and job.result == 7
    assert job.events.filter(to_status=JobStatus.RETRYING).count() == 2


def test_failures_past_max_retries_end_failed_with_the_last_error(live, api):
    job_id = create(api, {"fail_times": 5}, max_retries=1)
    job = wait_status(job_id, JobStatus.FAILED)
    assert job.attempts == 2 and job.error_code == "echo_failure"
    assert "attempt 2" in job.error_message
    body = api.get(f"/api/v1/jobs/{job_id}/").json()
    assert body["error"]["code"] == "echo_failure"


def test_cancel_pending_never_runs(live, api):
    [worker] = [p for p in live.platform if p.name == "main"]
    blockers = [create(api, {"duration_s": 2}) for _ in range(2)]  # fill both pool slots
    wait_for(
        lambda: Job.objects.filter(pk__in=blockers, status=JobStatus.RUNNING).count() == 2,
        10,
        "busy",
    )
    job_id = create(api, {"payload": "never"})
    response = api.post(f"/api/v1/jobs/cancel/{job_id}")
    assert response.status_code == 200
    for blocker in blockers:
        wait_status(blocker, JobStatus.COMPLETED)
    # Its message was delivered: the worker tried to claim the job and skipped it.
    skipped = f"Job {job_id} is not claimable".encode()
    wait_for(lambda: worker.logged_since_start(skipped), 10, "the message to be skipped", worker)
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.CANCELLED and job.attempts == 0 and job.started_at is None


def test_cancel_running_stops_at_next_progress_call(live, api):
    job_id = create(api, {"duration_s": 30, "steps": 300})
    wait_for(lambda: Job.objects.get(pk=job_id).progress > 0, 10, "progress")
    asked = time.monotonic()
    response = api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 202
    job = wait_status(job_id, JobStatus.CANCELLED, timeout=5)
    assert time.monotonic() - asked < 3
    assert job.progress < 100
    kinds = list(job.events.values_list("kind", flat=True))
    assert "cancel_requested" in kinds


def test_cancel_running_job_that_never_reports_is_terminated_after_grace(live, api):
    job_id = create(api, {"duration_s": 60, "steps": 1})
    wait_status(job_id, JobStatus.RUNNING)
    api.post(f"/api/v1/jobs/{job_id}/cancel/")
    job = wait_status(job_id, JobStatus.CANCELLED, timeout=10)
    assert "grace" in job.events.last().reason
    # The worker survives the kill and keeps serving.
    after = create(api, {"payload": "still here"})
    assert wait_status(after, JobStatus.COMPLETED).result == "still here"


def test_restart_failed_job_runs_again_under_the_same_id(live, api):
    job_id = create(api, {"fail_times": 1, "payload": "second time"}, max_retries=0)
    wait_status(job_id, JobStatus.FAILED)
    response = api.post(f"/api/v1/jobs/restart/{job_id}")
    assert response.status_code == 200
    job = wait_status(job_id, JobStatus.COMPLETED)
    assert job.attempts == 2 and job.result == "second time"
    reasons = list(job.events.values_list("reason", flat=True))
    assert any(r.startswith("restarted after 1 attempt") for r in reasons)
    assert api.post(f"/api/v1/jobs/{job_id}/restart/").status_code == 409


def test_idempotent_create_runs_once(live, api):
    ids = {
        api.post(
            "/api/v1/jobs/",
            {"type": "echo", "params": {"payload": 1}},
            format="json",
            HTTP_IDEMPOTENCY_KEY="once",
        ).json()["job_id"]
        for _ in range(3)
    }
    assert len(ids) == 1
    job = wait_status(ids.pop(), JobStatus.COMPLETED)
    assert job.attempts == 1 and Job.objects.count() == 1


def test_scheduled_job_runs_when_due(live, api):
    from datetime import timedelta

    from django.utils import timezone

    run_at = timezone.now() + timedelta(seconds=1.5)
    job_id = create(api, {"payload": "later"}, run_at=run_at.isoformat())
    assert Job.objects.get(pk=job_id).status == JobStatus.SCHEDULED
    job = wait_status(job_id, JobStatus.COMPLETED, timeout=15)
    assert job.started_at >= run_at


def test_time_limit_fails_the_job_and_the_worker_keeps_serving(live, user, monkeypatch):
    from jobs import publish, services

    monkeypatch.setattr(publish.app, "send_task", lambda *a, **k: None)  # publish below
    job, _ = services.job_create(
        owner=user, job_type="echo", params={"duration_s": 30, "steps": 3}, actor="t"
    )
    monkeypatch.undo()
    Job.objects.filter(pk=job.pk).update(time_limit=1)
    job.time_limit = 1
    publish.publish_job(job)
    failed = wait_status(job.pk, JobStatus.FAILED, timeout=15)
    assert failed.error_code == "timeout" and failed.attempts == 1
    assert "time limit of 1 s" in failed.error_message
    after, _ = services.job_create(owner=user, job_type="echo", params={"payload": 2}, actor="t")
    assert wait_status(after.pk, JobStatus.COMPLETED).result == 2
