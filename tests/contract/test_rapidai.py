"""RapidAI's background jobs, as its guide writes them (``@background(max_retries=3)`` on an
``async def``, ``await task.enqueue(...)``, the status check), on Jobsite's workers. The
functions live in ``tests/sample_tasks.py`` (the worker imports them by path)."""

from __future__ import annotations

import asyncio
import time

import pytest

from jobs.models import Job, JobStatus
from tests import sample_tasks
from tests.sample_tasks import flaky_twice, process_document

pytestmark = [pytest.mark.worker]


# RapidAI's status route, as written (``check_status`` in its quick start).
async def check_status(job_id: str):
    # Check job status
    result = await process_document.get_result(job_id)

    return {
        "job_id": result.job_id,
        "status": result.status,
        "result": result.result,
        "error": result.error,
        "duration": result.duration,
    }


async def until_done(task, job_id: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await task.get_result(job_id)
        if result.is_done:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} not done after {timeout} s")


def test_quick_start_enqueue_and_status(live):
    async def scenario():
        # Enqueue the job (RapidAI's enqueue_processing route)
        job_id = await process_document.enqueue(doc_id="d-1", user_id="u-1")
        first = await check_status(job_id)
        assert first["status"] in ("pending", "running", "completed")
        await until_done(process_document, job_id)
        return job_id, await check_status(job_id)

    job_id, status = asyncio.run(scenario())
    assert status["job_id"] == job_id and status["status"] == "completed"
    assert status["result"] == {"doc_id": "d-1", "status": "processed"}
    assert status["error"] is None and status["duration"] >= 0
    job = Job.objects.get(pk=job_id)
    assert job.type == "tests.sample_tasks.process_document" and job.max_retries == 3


def test_retries_with_backoff_then_success(live):
    async def scenario():
        job_id = await flaky_twice.enqueue(key="k")
        return await until_done(flaky_twice, job_id)

    result = asyncio.run(scenario())
    assert result.status == "completed" and result.attempts == 3
    assert result.result == {"key": "k", "attempt": 3}
    job = Job.objects.get(pk=result.job_id)
    retried = job.events.filter(to_status=JobStatus.RETRYING).count()
    assert retried == 2


def test_cancel_and_unknown_ids(live):
    async def scenario():
        job_id = await process_document.enqueue(doc_id="d-2", user_id="u-2")
        done = await until_done(process_document, job_id)
        return (
            done,
            await process_document.cancel(job_id),  # finished: nothing to cancel
            await process_document.get_result("no-such-job"),
            await flaky_twice.get_result(job_id),  # another task's job is not this task's
        )

    done, cancelled, unknown, foreign = asyncio.run(scenario())
    assert done.status == "completed" and cancelled is False
    assert unknown is None and foreign is None


# --- async def under Django's Tasks API ---------------------------------------------------


def test_async_django_task_runs_and_reports_progress(live):
    result = sample_tasks.async_add.enqueue(2, 3)
    deadline = time.monotonic() + 30
    while not sample_tasks.async_add.get_result(result.id).is_finished:
        assert time.monotonic() < deadline, "async task did not finish"
        time.sleep(0.1)
    final = sample_tasks.async_add.get_result(result.id)
    assert final.return_value == 5
    # The progress reported from the event loop reached the row.
    assert Job.objects.get(pk=result.id).current_step == "adding, asynchronously"


def test_async_django_task_stops_at_its_next_progress_call_when_cancelled(live):
    from jobs import services
    from tests.helpers import wait_status

    result = sample_tasks.async_wait.enqueue(30)
    wait_status(result.id, JobStatus.RUNNING)
    deadline = time.monotonic() + 10
    while Job.objects.get(pk=result.id).progress == 0:
        assert time.monotonic() < deadline, "no progress from the async task"
        time.sleep(0.05)
    services.job_cancel(Job.objects.get(pk=result.id), actor="test")
    job = wait_status(result.id, JobStatus.CANCELLED, timeout=10)
    # Stopped by its own progress call, not terminated after the cancel grace.
    reasons = list(job.events.values_list("reason", flat=True))
    assert any(reason.startswith("stopped after a cancel request") for reason in reasons)
    assert not any("terminated" in reason for reason in reasons)
