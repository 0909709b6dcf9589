"""Compileo's client code, as its guide writes it, against a live Jobsite."""

from __future__ import annotations

import ast
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobStatus
from tests.contract import clients
from tests.helpers import wait_status

pytestmark = [pytest.mark.worker]


def test_monitor_job_completion_follows_a_job_to_its_end(client_of, capsys):
    job_id = client_of(params={"duration_s": 1, "steps": 4, "payload": {"n": 1}})
    final = clients.monitor_job_completion(job_id, poll_interval=1)
    assert final["status"] == "completed" and final["result"] == {"n": 1}
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"Job {job_id}: completed - 100.0% - ")


def test_wait_for_job_change_without_current_status_answers_at_the_change(client_of):
    """A poll answers when the status differs from the one it had when the poll came in,
    not at the timeout (it did, after 10 s, before this was fixed)."""
    job_id = client_of(params={"duration_s": 3, "steps": 3})
    wait_status(job_id, JobStatus.RUNNING)
    started = time.monotonic()
    changed = clients.wait_for_job_change(job_id, timeout=10)
    waited = time.monotonic() - started
    assert changed["status"] == "completed"
    assert waited < 6, f"answered after {waited:.1f} s, not at the change"


def test_wait_for_job_change_with_current_status(client_of):
    job_id = client_of(params={"duration_s": 1.5})
    wait_status(job_id, JobStatus.RUNNING)
    started = time.monotonic()
    assert clients.wait_for_job_change(job_id, "running", timeout=10)["status"] == "completed"
    assert time.monotonic() - started < 6
    started = time.monotonic()  # it already differs: at once
    assert clients.wait_for_job_change(job_id, "running", timeout=10)["status"] == "completed"
    assert time.monotonic() - started < 2


def test_stream_job_updates_follows_a_retried_job_to_its_success(client_of, capsys):
    """The event of a retrying job carries ``last_error``, not ``error``: Compileo's client
    stops at the first ``error`` and gave up on jobs that then succeeded."""
    # Scheduled a moment ahead, so the stream is open before its first attempt fails.
    run_at = (timezone.now() + timedelta(seconds=1.5)).isoformat()
    job_id = client_of(params={"fail_times": 1, "duration_s": 0.5, "steps": 2}, run_at=run_at)
    clients.stream_job_updates(job_id)
    out = capsys.readouterr().out
    updates = [
        ast.literal_eval(line.removeprefix("Job Update: "))
        for line in out.splitlines()
        if line.startswith("Job Update: ")
    ]
    assert "Error:" not in out
    assert out.rstrip().endswith("Job finished")
    assert updates[-1]["status"] == "completed"
    retrying = [update for update in updates if update["status"] == "retrying"]
    assert retrying and retrying[0]["last_error"]["code"] == "echo_failure"
    assert not any("error" in update for update in updates)
    assert wait_status(job_id, JobStatus.COMPLETED).attempts == 2


def test_stream_job_updates_stops_at_a_failure_with_its_error(client_of, capsys):
    job_id = client_of(params={"fail_times": 5}, max_retries=0)
    clients.stream_job_updates(job_id)
    out = capsys.readouterr().out
    assert "Error: {'code': 'echo_failure', 'message': 'echo failing attempt 1" in out


def test_check_queue_health_reads_every_figure_it_needs(client_of, capsys):
    client_of()
    stats = clients.check_queue_health()
    out = capsys.readouterr().out
    assert stats is not None, out
    assert "Queue health: GOOD" in out or "Queue health: WARNING" in out
    assert "Failed to check queue health" not in out


def test_monitor_job_with_recovery_restarts_a_failed_job_until_it_completes(client_of, capsys):
    job_id = client_of(params={"fail_times": 1}, max_retries=0)
    wait_status(job_id, JobStatus.FAILED)
    final = clients.monitor_job_with_recovery(job_id)
    out = capsys.readouterr().out
    assert f"Job {job_id} failed: {{'code': 'echo_failure'" in out
    assert "Job restarted successfully" in out
    assert final is not None and final["status"] == "completed"


def test_monitor_job_with_recovery_restarts_a_cancelled_job(client_of, capsys):
    run_at = (timezone.now() + timedelta(hours=1)).isoformat()
    job_id = client_of(params={"duration_s": 0.5, "payload": "again"}, run_at=run_at)
    cancel = clients.requests.post(
        f"{clients.BASE}/api/v1/jobs/cancel/{job_id}", headers=clients.HEADERS, timeout=10
    )
    assert cancel.status_code == 200 and cancel.json()["message"].endswith("cancelled successfully")
    final = clients.monitor_job_with_recovery(job_id)
    assert final is not None and final["status"] == "completed", capsys.readouterr().out
    assert final["result"] == "again"


def test_monitor_job_with_recovery_of_an_unknown_job_says_not_found(client_of, capsys):
    assert clients.monitor_job_with_recovery("00000000-0000-0000-0000-000000000000") is None
    assert "not found" in capsys.readouterr().out
