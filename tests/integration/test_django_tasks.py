"""Django's Tasks API on Jobsite: ``@task`` functions enqueued the standard way."""

from __future__ import annotations

import pytest
from django_tasks import TaskResultStatus
from django_tasks.exceptions import TaskResultDoesNotExist

from jobs.errors import InvalidInput
from jobs.models import Job, JobStatus
from tests import sample_tasks
from tests.helpers import wait_for, wait_status

pytestmark = [pytest.mark.worker]


def test_task_enqueue_becomes_a_job_and_get_result_reads_it(live):
    result = sample_tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    job = Job.objects.get(pk=result.id)
    assert job.type == "tests.sample_tasks.add" and job.owner is None
    assert job.events.get().actor == "system:django-tasks"
    wait_status(result.id, JobStatus.COMPLETED)
    final = sample_tasks.add.get_result(result.id)
    assert final.status == TaskResultStatus.SUCCESSFUL and final.return_value == 5
    assert final.attempts == 1


def test_task_with_context(live):
    result = sample_tasks.whoami.enqueue(tag="x")
    wait_for(lambda: sample_tasks.whoami.get_result(result.id).is_finished, 20, "finish")
    assert sample_tasks.whoami.get_result(result.id).return_value == {"tag": "x", "attempt": 1}


def test_background_options_land_on_the_job_and_params_are_validated(live):
    result = sample_tasks.shout.enqueue(text="hi")
    job = Job.objects.get(pk=result.id)
    assert (job.max_retries, job.time_limit) == (2, 30)
    wait_status(result.id, JobStatus.COMPLETED)
    assert sample_tasks.shout.get_result(result.id).return_value == "HI"
    with pytest.raises(InvalidInput) as err:
        sample_tasks.shout.enqueue(txt="typo")
    assert "params.txt" in err.value.details


def test_unknown_result_id(live):
    with pytest.raises(TaskResultDoesNotExist):
        sample_tasks.add.get_result("not-a-job")


def test_arguments_the_database_cannot_store_are_refused_at_enqueue(live):
    with pytest.raises(InvalidInput) as err:
        sample_tasks.shout.enqueue(text="\ud800")
    assert err.value.code == "invalid_text"
    nested: list = []
    for _ in range(100):
        nested = [nested]
    with pytest.raises(InvalidInput) as err:
        sample_tasks.add.enqueue(nested, 1)
    assert err.value.code == "json_too_deep"
    assert not Job.objects.exists()
