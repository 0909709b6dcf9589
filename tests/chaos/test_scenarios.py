"""The must-have fault scenarios (``make chaos``; part of ``make test`` and CI).

Jobs run on the ``media`` queue, served only by the workers a scenario starts (and kills);
the session's main worker and beat keep the sweeper (reaper, dispatcher) going.
"""

from __future__ import annotations

import os
import random
import threading
import time

import httpx
import pytest
from django.db import connection

from jobs import publish
from jobs.models import Job
from jobs.queues import Queue
from tests.chaos.conftest import (
    Supervisor,
    assert_invariant,
    report,
    restart_postgres,
    settle,
    submit,
)
from tests.helpers import make_client, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.chaos]

OUTAGE_S = float(os.environ.get("JOBSITE_CHAOS_OUTAGE_S", "20"))


def running_count(job_ids: list[str]) -> int:
    return Job.objects.filter(pk__in=job_ids, status="running").count()


def test_sigkill_a_worker_mid_burst_three_times(live, user):
    workers = [live.worker(queues=[Queue.MEDIA], concurrency=4) for _ in range(2)]
    job_ids = submit(user, 200, duration_s=0.6, steps=6, payload="kill")
    for round_no in range(3):
        wait_for(lambda: running_count(job_ids) >= 4, 30, "jobs running")
        time.sleep(0.3)
        victim = workers[round_no % 2]
        victim.kill_group()  # the machine dies: no task_failure, no ack, no heartbeat
        workers[round_no % 2] = live.worker(queues=[Queue.MEDIA], concurrency=4)
    fault_over = time.monotonic()
    settle(job_ids, 120)
    result = report("SIGKILL a worker x3 mid-burst", job_ids, time.monotonic() - fault_over)
    assert_invariant(result)
    assert result.by_status["completed"] == 200, result.line()
    for worker in workers:
        worker.stop()


def test_broker_stops_during_a_burst_of_creates_and_runs(live, user, broker):
    worker = live.worker(queues=[Queue.MEDIA], concurrency=4)
    job_ids: list[str] = []
    job_ids += submit(user, 40, duration_s=0.5, steps=5, payload="before")
    wait_for(lambda: running_count(job_ids) >= 2, 30, "jobs running")
    broker.stop()
    started = time.monotonic()
    created_during = submit(user, 40, duration_s=0.3, steps=3, payload="during")  # never 5xx
    create_s = time.monotonic() - started
    job_ids += created_during
    time.sleep(max(0.0, OUTAGE_S - create_s))
    broker.start()
    fault_over = time.monotonic()
    supervisor = Supervisor(live, [*live.platform, worker])
    job_ids += submit(user, 20, duration_s=0.3, steps=3, payload="after")
    settle(job_ids, 120, supervisor)
    result = report(
        f"broker down {OUTAGE_S:.0f} s mid-burst",
        job_ids,
        time.monotonic() - fault_over,
        notes=f"(40 created while down in {create_s:.1f} s){supervisor.notes()}",
    )
    assert_invariant(result)
    assert result.by_status["completed"] == 100, result.line()
    worker.stop()


def test_postgres_restarts_during_a_burst(live, user):
    if connection.vendor != "postgresql":
        pytest.skip("no database server in the embedded default (SQLite)")
    worker = live.worker(queues=[Queue.MEDIA], concurrency=4)
    job_ids = submit(user, 80, duration_s=0.5, steps=5, payload="pg")
    wait_for(lambda: running_count(job_ids) >= 4, 30, "jobs running")
    restart_postgres()
    fault_over = time.monotonic()
    settle(job_ids, 120)
    result = report("PostgreSQL restart mid-burst", job_ids, time.monotonic() - fault_over)
    assert_invariant(result)
    assert result.by_status["completed"] == 80, result.line()
    worker.stop()


def test_broker_down_when_jobs_are_created_the_api_answers_and_they_run_later(
    web, live, user, broker
):
    key = make_client(user).api_key
    headers = {"Authorization": f"Bearer {key}"}
    broker.stop()
    slowest, job_ids = 0.0, []
    with httpx.Client(base_url=web.url, headers=headers, timeout=30) as client:
        for i in range(30):
            started = time.monotonic()
            response = client.post(
                "/api/v1/jobs/",
                json={"type": "echo", "params": {"payload": i, "write_payload": True}},
            )
            slowest = max(slowest, time.monotonic() - started)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["job_id"])
    assert set(Job.objects.filter(pk__in=job_ids).values_list("status", flat=True)) == {"pending"}
    broker.start()
    fault_over = time.monotonic()
    supervisor = Supervisor(live, list(live.platform))  # the API's jobs run on the main worker
    settle(job_ids, 60, supervisor)
    result = report(
        "broker down at create (API)",
        job_ids,
        time.monotonic() - fault_over,
        notes=f"(slowest POST while down: {slowest * 1000:.0f} ms){supervisor.notes()}",
    )
    assert_invariant(result)
    assert result.by_status["completed"] == 30, result.line()
    assert slowest < 5


def test_memory_and_time_limits_fail_the_job_not_the_worker(live, user, monkeypatch):
    worker = live.worker(queues=[Queue.MEDIA], concurrency=2, JOBSITE_WORKER_MEMORY_LIMIT_MB="400")
    hog = submit(user, 1, allocate_mb=1024, payload="hog")
    monkeypatch.setattr(publish.app, "send_task", lambda *a, **k: None)  # publish below
    slow = submit(user, 1, duration_s=30, steps=3, payload="slow")
    monkeypatch.undo()
    Job.objects.filter(pk__in=slow).update(time_limit=1)
    publish.publish_job(Job.objects.get(pk=slow[0]))
    fine = submit(user, 4, duration_s=0.2, steps=2, payload="fine")
    job_ids = hog + slow + fine
    started = time.monotonic()
    settle(job_ids, 60)
    result = report("memory limit and time limit", job_ids, time.monotonic() - started)
    assert_invariant(result, allowed_failures={"out_of_memory", "timeout"})
    assert Job.objects.get(pk=hog[0]).error_code == "out_of_memory"
    assert Job.objects.get(pk=slow[0]).error_code == "timeout"
    assert result.by_status["completed"] == 4, result.line()
    worker.stop()


def test_cancel_and_restart_storms_from_many_clients(live, user):
    workers = [live.worker(queues=[Queue.MEDIA], concurrency=4)]
    job_ids = submit(user, 40, duration_s=1.0, steps=10, payload="storm")
    stop = threading.Event()
    answers: list[int] = []

    def client(seed: int) -> None:
        api = make_client(user)
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                job_id = rng.choice(job_ids)
                action = rng.choice(["cancel", "restart"])
                answers.append(api.post(f"/api/v1/jobs/{job_id}/{action}/").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(12)]
    for thread in threads:
        thread.start()
    time.sleep(8)
    stop.set()
    for thread in threads:
        thread.join()
    fault_over = time.monotonic()
    # Whatever the storm left waiting or restarted runs to its end.
    settle(job_ids, 120)
    result = report(
        "cancel/restart storm (12 clients)",
        job_ids,
        time.monotonic() - fault_over,
        notes=f"({len(answers)} requests: {sorted(set(answers))})",
    )
    assert_invariant(result)
    assert set(answers) <= {200, 202, 409}, sorted(set(answers))
    for worker in workers:
        worker.stop()
