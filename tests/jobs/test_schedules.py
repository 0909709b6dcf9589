"""Retention and schedules: a purged job's outcome answers GET for its owner only; beat's
schedules exist after migrate; a scheduled run is a system-owned job, never started twice
while the last one is going."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from jobs import maintenance, schedules
from jobs.models import Job, JobStatus
from processing import services
from processing.consolidation import start_scheduled
from processing.models import Memory

pytestmark = pytest.mark.django_db


def test_a_purged_job_answers_with_its_archived_outcome_for_its_owner_only(api, other_api, user):
    old = timezone.now() - timedelta(days=40)
    job = Job.objects.create(
        type="echo",
        owner=user,
        status=JobStatus.FAILED,
        attempts=2,
        error_code="bad_input",
        error_message="Not a PDF",
        created_at=old,
        started_at=old,
        completed_at=old,
    )
    assert api.get(f"/api/v1/jobs/{job.pk}").json()["status"] == "failed"
    maintenance.purge()
    assert not Job.objects.filter(pk=job.pk).exists()
    body = api.get(f"/api/v1/jobs/{job.pk}").json()
    assert body["archived"] is True and body["job_id"] == str(job.pk)
    assert (body["type"], body["status"], body["attempts"]) == ("echo", "failed", 2)
    assert body["error"] == {"code": "bad_input", "message": "Not a PDF"}
    assert body["error_message"] == "Not a PDF" and body["result"] is None
    assert body["completed_at"].endswith("Z")
    assert other_api.get(f"/api/v1/jobs/{job.pk}").status_code == 404
    assert api.get(f"/api/v1/jobs/{job.pk}/events/").status_code == 404  # gone with it


def test_beat_s_schedules_exist_after_migrate_and_are_editable_rows():
    tasks = {t.name: t for t in PeriodicTask.objects.filter(name__startswith="jobsite-")}
    assert set(tasks) == {
        "jobsite-sweep",
        "jobsite-memory-access",
        "jobsite-purge",
        "jobsite-consolidation",
    }
    assert tasks["jobsite-purge"].task == "jobs.schedule.purge"
    assert (tasks["jobsite-purge"].crontab.hour, tasks["jobsite-purge"].crontab.minute) == (
        "3",
        "30",
    )
    assert tasks["jobsite-consolidation"].task == "processing.schedule_consolidation"
    assert tasks["jobsite-sweep"].interval.every >= 1
    assert all(t.enabled and t.queue == "maintenance" for t in tasks.values())


def test_a_scheduled_run_is_a_system_job_not_started_twice_while_going():
    first = schedules.start("purge", {})
    assert first is not None and first.owner is None and first.queue == "maintenance"
    assert first.events.get().actor == "system:beat"
    assert schedules.start("purge", {}) is None  # the first is still pending
    Job.objects.filter(pk=first.pk).update(status=JobStatus.COMPLETED)
    assert schedules.start("purge", {}) is not None


def test_consolidation_is_scheduled_per_collection_with_work(user, other_user):
    quiet = services.collection_create(owner=user, name="quiet")  # empty: nothing to do
    busy = services.collection_create(owner=user, name="busy")
    theirs = services.collection_create(owner=other_user, name="theirs")
    for collection in (busy, theirs):
        Memory.objects.create(
            collection=collection, source="a", source_hash="a", text="t", content_hash="h"
        )
    assert start_scheduled() == 2
    started = Job.objects.filter(type="memory_consolidation", owner=None)
    assert sorted(j.params["collection_id"] for j in started) == sorted(
        [str(busy.pk), str(theirs.pk)]
    )
    assert str(quiet.pk) not in {j.params["collection_id"] for j in started}
    assert start_scheduled() == 0  # each still pending
