"""The single-job lookup compiled once per process reads a row exactly as the ORM does."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from jobs import selectors
from jobs.errors import NotFound
from jobs.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def fields(job: Job) -> dict:
    return {field.attname: getattr(job, field.attname) for field in Job._meta.concrete_fields}


def test_the_compiled_lookup_reads_every_field_as_the_orm_does(user, other_user):
    job = Job.objects.create(
        type="echo",
        owner=user,
        status=JobStatus.COMPLETED,
        params={"payload": {"nested": [1, "two", None]}},
        result={"ok": True, "text": "é"},
        started_at=timezone.now(),
        completed_at=timezone.now(),
    )
    expected = fields(Job.objects.get(pk=job.pk))
    assert fields(selectors.job_get(owner=user, job_id=str(job.pk))) == expected
    assert fields(selectors._job(job.pk)) == expected  # no scope: a staff member's lookup
    with pytest.raises(NotFound):
        selectors.job_get(owner=other_user, job_id=job.pk)
    with pytest.raises(NotFound):
        selectors.job_get(owner=user, job_id=uuid.uuid4())
    with pytest.raises(NotFound):
        selectors.job_get(owner=user, job_id="not-a-uuid")


def test_a_lookup_of_a_job_without_an_owner_still_works(user):
    job = Job.objects.create(type="tests.sample_tasks.add", owner=None)
    found = selectors.task_job_get(job_type="tests.sample_tasks.add", job_id=job.pk)
    assert found.pk == job.pk and found.owner_id is None
