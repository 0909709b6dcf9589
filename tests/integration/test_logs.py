"""JSON logs from real processes: a Celery worker and the web server started with
``JOBSITE_LOG_FORMAT=json`` write nothing but JSON lines, and the lines a job causes carry
its id, type, attempt and owner, whoever logged them (our services, Celery, a library, a
process the job forked)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone

from jobs import services
from jobs.models import JobStatus
from jobs.queues import Queue
from tests import log_tasks
from tests.helpers import WebServer, wait_for, wait_status

pytestmark = [pytest.mark.worker]

JSON_LOGS = {"JOBSITE_LOG_FORMAT": "json"}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as JSON (a line that is not fails the test, shown whole)."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert record["time"].endswith("Z"), record
        records.append(record)
    return records


def about(records: list[dict[str, Any]], job_id: Any) -> list[dict[str, Any]]:
    return [record for record in records if record.get("job_id") == str(job_id)]


def one(records: list[dict[str, Any]], text: str) -> dict[str, Any]:
    [found] = [record for record in records if text in record["message"]]
    return found


def job_fields(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record.get(name) for name in ("job_id", "job_type", "attempt", "owner_id"))


def create(user: Any, job_type: str, params: Any, **options: Any) -> Any:
    job, _ = services.job_create(
        owner=user, job_type=job_type, params=params, actor="test", queue=Queue.MEDIA, **options
    )
    return job


def test_a_json_worker_writes_json_lines_that_name_the_job(live, user):
    worker = live.worker(queues=[Queue.MEDIA], concurrency=1, **JSON_LOGS)
    done = create(user, "echo", {"duration_s": 0.3, "steps": 3, "payload": "hi"})
    failing = create(user, "echo", {"fail_times": 5}, max_retries=1)
    noisy = create(
        user,
        log_tasks.noisy.module_path,
        {"args": [], "kwargs": {"tag": "t1"}},
        public_only=False,
    )
    wait_status(done.pk, JobStatus.COMPLETED)
    wait_status(failing.pk, JobStatus.FAILED)
    wait_status(noisy.pk, JobStatus.FAILED)
    ended = f"job {noisy.pk}: running -> failed".encode()
    wait_for(lambda: worker.logged_since_start(ended), 10, "the last job's end", worker)
    worker.stop()  # its shutdown notices must be JSON lines too

    records = json_lines(worker.log())
    assert one(records, "ready.")["logger"].startswith("celery")
    assert any(r["message"] == "worker: Warm shutdown (MainProcess)" for r in records)

    lines = about(records, done.pk)
    start = one(lines, "pending -> running")
    end = one(lines, "running -> completed")
    assert job_fields(start) == job_fields(end) == (str(done.pk), "echo", 1, user.pk)
    assert start["logger"] == "jobs.services" and start["level"] == "INFO"

    lines = about(records, failing.pk)
    retry = one(lines, "running -> retrying")
    failed = one(lines, "running -> failed")
    assert job_fields(retry) == (str(failing.pk), "echo", 1, user.pk)
    assert job_fields(failed) == (str(failing.pk), "echo", 2, user.pk)

    # Lines the job's code did not write itself name it too: a library's, a print's, a
    # forked and a started child process's, and Celery's own about the unexpected error.
    lines = about(records, noisy.pk)
    expected = (str(noisy.pk), log_tasks.noisy.module_path, 1, user.pk)
    library = one(lines, "library line t1")
    printed = one(lines, "printed line t1")
    forked = one(lines, "forked process line t1")
    spawned = one(lines, "spawned process line t1")
    celery = one([r for r in lines if r["logger"] == "celery.app.trace"], "unexpected error")
    assert library["logger"] == "somelibrary.client" and printed["logger"] == "celery.redirected"
    assert forked["logger"] == "somelibrary.child" and spawned["logger"] == "somelibrary.spawned"
    assert celery["level"] == "ERROR"
    assert "Traceback" in celery["exc_info"] and "ValueError" in celery["exc_info"]
    for record in (library, printed, forked, spawned, celery, one(lines, "running -> failed")):
        assert job_fields(record) == expected, record

    # Lines no job caused carry no job fields.
    assert not any("job_id" in r for r in records if "ready." in r["message"])


def test_a_json_web_server_names_the_job_a_request_acts_on(live, user):
    from jobs.auth import api_key_create

    _, key = api_key_create(user=user, name="logs")
    auth = {"Authorization": f"Bearer {key}"}
    # Not live.web(): a server of this test's own, stopped by it (the fixtures' teardown
    # expects only Celery processes among those a test starts).
    server = WebServer({**live.env, **JSON_LOGS}, live.log_dir)
    try:
        later = (timezone.now() + timedelta(hours=1)).isoformat()
        response = httpx.post(
            f"{server.url}/api/v1/jobs/",
            json={"type": "echo", "params": {"payload": 1}, "run_at": later},
            headers=auth,
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        response = httpx.post(f"{server.url}/api/v1/jobs/cancel/{job_id}", headers=auth)
        assert response.status_code == 200, response.text
        cancelled = f"job {job_id}: scheduled -> cancelled".encode()
        wait_for(lambda: cancelled in server.log_path.read_bytes(), 10, "the cancel's line")
    finally:
        server.stop()

    records = json_lines(server.log())
    assert one(records, "Uvicorn running on")["logger"] == "uvicorn.error"
    lines = about(records, job_id)
    created = one(lines, f"job {job_id}: -> scheduled (created")
    cancel = one(lines, "scheduled -> cancelled")
    for record in (created, cancel):
        assert job_fields(record) == (job_id, "echo", 0, user.pk), record
