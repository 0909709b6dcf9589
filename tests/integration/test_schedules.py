"""Scheduled runs as jobs, end to end: what beat calls creates system-owned jobs, and the
platform's worker runs them to completion (the purge on the maintenance queue, while the
sweeper keeps running beside it)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job, JobArchive, JobStatus
from jobs.tasks import schedule_purge
from processing import services
from processing.models import Memory
from processing.tasks import schedule_consolidation
from tests.helpers import wait_status

pytestmark = [pytest.mark.worker]
DONE = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


def test_the_scheduled_purge_and_consolidation_run_as_jobs(live, user):
    old = timezone.now() - timedelta(days=40)
    ended = [
        Job.objects.create(type="echo", owner=user, status=JobStatus.COMPLETED, completed_at=old)
        for _ in range(5)
    ]
    purge_id = schedule_purge()
    assert purge_id is not None and schedule_purge() is None  # not started twice
    purge = wait_status(purge_id, DONE, 60)
    assert purge.status == JobStatus.COMPLETED, purge.error_message
    assert purge.owner is None and purge.result["deleted"] == 5
    assert JobArchive.objects.filter(pk__in=[j.pk for j in ended]).count() == 5

    collection = services.collection_create(owner=user, name="daily")
    text = "The same words said twice over in this memory of ours."
    for source in ("a", "b"):
        Memory.objects.create(
            collection=collection,
            source=source,
            source_hash=source,
            text=text,
            content_hash=services.content_hash(text),
        )
    assert schedule_consolidation() == 1
    job = Job.objects.get(type="memory_consolidation", owner=None)
    job = wait_status(job.pk, DONE, 60)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.result["merged"] == 1
    assert Memory.objects.filter(collection=collection).count() == 1
