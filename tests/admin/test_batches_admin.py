"""Batches in the admin: counts linking into the job list, the jobs on the batch's page,
its delivery, and the cancel action (the API's service)."""

from __future__ import annotations

from unittest import mock

import pytest

from jobs import publish
from jobs.models import Batch, Job, JobStatus
from jobs.services.batches import JobSpec, batch_create

pytestmark = pytest.mark.django_db

BATCHES = "/admin/jobs/batch/"


@pytest.fixture
def batch(django_user_model) -> Batch:
    owner = django_user_model.objects.create_user("olivia", password="x")
    with mock.patch.object(publish, "publish_job"):
        batch, _ = batch_create(
            owner=owner,
            specs=[JobSpec(type="echo", params={"payload": n}) for n in range(3)],
            actor="test",
            label="<b>nightly</b>",
        )
    return batch


def test_the_list_and_the_page_show_counts_and_jobs(admin_client, batch):
    listing = admin_client.get(BATCHES).content.decode()
    assert str(batch.pk) in listing and "&lt;b&gt;nightly&lt;/b&gt;" in listing
    page = admin_client.get(f"{BATCHES}{batch.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    for job in Job.objects.filter(batch=batch):
        assert str(job.pk) in html
    assert f"?batch__exact={batch.pk}" in html and "All 3 jobs of this batch" in html
    filtered = admin_client.get("/admin/jobs/job/", {"batch__exact": str(batch.pk)})
    assert filtered.status_code == 200 and filtered.content.decode().count("field-id") >= 3
    assert admin_client.get(f"{BATCHES}add/").status_code == 403


def test_the_cancel_action_cancels_the_batch_jobs(admin_client, batch):
    response = admin_client.post(
        BATCHES, {"action": "cancel_batches", "_selected_action": [str(batch.pk)]}, follow=True
    )
    assert response.status_code == 200
    assert "3 job(s) cancelled, 0 stopping." in [str(m) for m in response.context["messages"]]
    assert set(Job.objects.filter(batch=batch).values_list("status", flat=True)) == {
        JobStatus.CANCELLED
    }
