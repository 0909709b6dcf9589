"""The test harness's own promise: a platform process that exits is started again."""

import pytest

from jobs.queues import Queue
from jobs.services import job_create
from tests.helpers import wait_status

pytestmark = pytest.mark.worker


def test_a_killed_platform_worker_is_revived_and_runs_jobs(live, user):
    worker = live.worker(queues=[Queue.MEDIA], concurrency=1)
    first_pid = worker.pid
    worker.kill_group()

    reports = live.revive([worker])

    assert list(reports) == [worker.name] and reports[worker.name].startswith("exited (-9)")
    assert worker.pid != first_pid and worker.proc.poll() is None and worker.restarts == 1
    job, _ = job_create(owner=user, job_type="echo", params={}, actor="test", queue=Queue.MEDIA)
    wait_status(job.pk, "completed")
    assert live.revive([worker]) == {}  # alive: left alone
    worker.stop()
