"""Nothing lost: killed workers, lost messages. Real processes, real SIGKILLs.

Jobs here run on the ``media`` queue, which only the workers these tests start (and kill)
consume; the session's main worker runs the sweeper on ``maintenance``.
"""

from __future__ import annotations

import os
import signal

import pytest

from jobs import publish, services
from jobs.models import Job, JobStatus
from jobs.queues import Queue
from tests.helpers import wait_for, wait_status

pytestmark = [pytest.mark.worker]


def media_job(user, **params) -> Job:
    job, _ = services.job_create(
        owner=user, job_type="echo", params=params, actor="test", queue=Queue.MEDIA
    )
    return job


def pool_pid(job_id) -> int:
    worker = wait_status(job_id, JobStatus.RUNNING).worker
    return int(worker.rsplit(":", 1)[1])


def test_sigkill_of_the_pool_process_retries_the_job_at_once(live, user):
    worker = live.worker(queues=[Queue.MEDIA], concurrency=1)
    try:
        job = media_job(user, duration_s=3, steps=30, payload="survived")
        wait_for(lambda: Job.objects.get(pk=job.pk).progress > 0, 15, "progress", worker)
        os.kill(pool_pid(job.pk), signal.SIGKILL)
        done = wait_status(job.pk, JobStatus.COMPLETED, timeout=30)
        assert done.attempts == 2 and done.result == "survived"
        retry = done.events.get(to_status=JobStatus.RETRYING)
        # Usually the worker's own task_failure (WorkerLostError) gets there first; the
        # reaper (no heartbeat) is the backstop when the pool is slow to notice.
        assert "(worker_lost)" in retry.reason
        assert "signal 9" in retry.reason or retry.actor == "system:reaper"
    finally:
        worker.stop()


def test_sigkill_of_the_whole_worker_is_reaped_and_retried_elsewhere(live, user):
    doomed = live.worker(queues=[Queue.MEDIA], concurrency=1)
    job = media_job(user, duration_s=3, steps=30, payload="moved")
    wait_for(lambda: Job.objects.get(pk=job.pk).progress > 0, 15, "progress", doomed)
    doomed.kill_group()  # the machine is gone: no task_failure, no ack, no heartbeat
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    rescuer = live.worker(queues=[Queue.MEDIA], concurrency=1)
    try:
        done = wait_status(job.pk, JobStatus.COMPLETED, timeout=30)
        assert done.attempts == 2 and done.result == "moved"
        reaped = done.events.get(to_status=JobStatus.RETRYING)
        assert reaped.actor == "system:reaper" and "No heartbeat" in reaped.reason
    finally:
        rescuer.stop()


def test_a_job_that_kills_its_worker_every_time_ends_failed(live, user):
    worker = live.worker(queues=[Queue.MEDIA], concurrency=1)
    try:
        job, _ = services.job_create(
            owner=user,
            job_type="echo",
            params={"duration_s": 30, "steps": 300},
            actor="test",
            queue=Queue.MEDIA,
            max_retries=1,
        )
        for _ in range(2):
            wait_for(lambda: Job.objects.get(pk=job.pk).progress > 0, 15, "progress", worker)
            os.kill(pool_pid(job.pk), signal.SIGKILL)
            wait_for(
                lambda: Job.objects.get(pk=job.pk).status in (JobStatus.RETRYING, JobStatus.FAILED),
                10,
                "loss",
            )
        failed = wait_status(job.pk, JobStatus.FAILED)
        assert failed.attempts == 2 and failed.error_code == "worker_lost"
    finally:
        worker.stop()


def test_job_whose_message_was_lost_is_dispatched_again(live, user, monkeypatch):
    monkeypatch.setattr(publish.app, "send_task", lambda *a, **k: (_ for _ in ()).throw(OSError))
    job, _ = services.job_create(owner=user, job_type="echo", params={"payload": 1}, actor="t")
    monkeypatch.undo()
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    done = wait_status(job.pk, JobStatus.COMPLETED, timeout=20)
    assert done.attempts == 1
    assert done.events.filter(actor="system:dispatcher").exists()


def test_duplicate_messages_run_the_job_once(live, user):
    job, _ = services.job_create(
        owner=user, job_type="echo", params={"duration_s": 0.5, "payload": 1}, actor="t"
    )
    for _ in range(4):
        publish.publish_job(job)
    wait_status(job.pk, JobStatus.COMPLETED)
    job.refresh_from_db()
    assert job.attempts == 1
    assert job.events.filter(to_status=JobStatus.RUNNING).count() == 1
