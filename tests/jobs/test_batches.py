"""Batches without a worker: one transaction for all their jobs, counts and progress read
from the jobs, cancel, Idempotency-Key, owners, and the one ``batch.completed`` message
(written when the last job's end commits, or by the sweeper when that was missed)."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from jobs import publish
from jobs.models import Batch, Delivery, Job, JobStatus
from jobs.services import job_restart
from jobs.services.batches import close_missed
from processing import services as processing_services

pytestmark = pytest.mark.django_db

URL = "/api/v1/batches/"


@pytest.fixture(autouse=True)
def quiet_broker():
    """Messages are hints (the rows are the truth): none needs to reach a broker here."""
    with (
        mock.patch.object(publish, "publish_job", return_value=True),
        mock.patch.object(publish, "publish_delivery", return_value=True) as delivery,
    ):
        yield delivery


def echo_specs(count: int) -> list[dict]:
    return [{"type": "echo", "params": {"payload": n}} for n in range(count)]


def create(api, body: dict, **headers) -> dict:
    response = api.post(URL, body, format="json", **headers)
    assert response.status_code == 202, response.content
    return response.json()


def test_a_batch_creates_its_jobs_and_counts_them(api):
    created = create(api, {"jobs": echo_specs(3), "label": "nightly"})
    assert created["total"] == 3 and len(created["job_ids"]) == 3
    assert created["status"] == "pending" and created["progress"] == 0.0
    assert created["counts"]["pending"] == 3 and created["counts"]["running"] == 0
    batch_id = created["batch_id"]
    jobs = api.get(f"/api/v1/jobs/?batch={batch_id}").json()["results"]
    assert sorted(job["job_id"] for job in jobs) == sorted(created["job_ids"])
    assert {job["batch_id"] for job in jobs} == {batch_id}
    assert api.get(f"/api/v1/jobs/{created['job_ids'][0]}/").json()["batch_id"] == batch_id
    shown = api.get(f"/api/v1/batches/{batch_id}").json()
    assert shown["label"] == "nightly" and shown["counts"] == created["counts"]
    assert [b["batch_id"] for b in api.get(URL).json()["results"]] == [batch_id]


def test_progress_counts_an_ended_job_as_done(api):
    created = create(api, {"jobs": echo_specs(4)})
    first, second, *_ = created["job_ids"]
    Job.objects.filter(pk=first).update(status=JobStatus.FAILED, progress=10)
    Job.objects.filter(pk=second).update(status=JobStatus.RUNNING, progress=50)
    shown = api.get(f"/api/v1/batches/{created['batch_id']}").json()
    assert shown["progress"] == pytest.approx((100 + 50) / 4)
    assert shown["status"] == "running"
    assert shown["counts"]["failed"] == 1 and shown["counts"]["running"] == 1


def test_one_bad_specification_creates_nothing_and_says_which(api):
    specs = echo_specs(3)
    specs[2]["params"] = {"duration_s": -1}
    response = api.post(URL, {"jobs": specs}, format="json")
    assert response.status_code == 400, response.content
    assert "jobs[2]" in response.json()["error"]["message"]
    assert Job.objects.count() == 0 and Batch.objects.count() == 0


def test_an_unknown_type_in_a_batch_is_a_400_naming_it(api):
    response = api.post(URL, {"jobs": [*echo_specs(1), {"type": "nope"}]}, format="json")
    assert response.status_code == 400, response.content
    assert "jobs[1]" in response.json()["error"]["message"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"jobs": []},
        {"jobs": "echo"},
        {"jobs": [{"params": {}}]},
        {"jobs": echo_specs(1), "type": "echo"},
        {"jobs": echo_specs(1), "callback_url": "http://10.0.0.1/hook"},
        {"jobs": echo_specs(1), "unknown": 1},
    ],
)
def test_malformed_batches_are_400s(api, body):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"]
    assert Batch.objects.count() == 0


def test_a_batch_over_the_limit_is_refused_before_any_job_is_checked(api, settings):
    settings.JOBSITE_BATCH_MAX_JOBS = 5
    response = api.post(URL, {"jobs": echo_specs(6)}, format="json")
    assert response.status_code == 400
    assert "over the limit of 5" in str(response.json())
    assert Job.objects.count() == 0


def test_an_idempotency_key_replays_the_batch(api):
    first = create(api, {"jobs": echo_specs(2)}, HTTP_IDEMPOTENCY_KEY="k1")
    again = api.post(URL, {"jobs": echo_specs(2)}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again.json()["batch_id"] == first["batch_id"]
    assert again.json()["job_ids"] == first["job_ids"]
    assert Job.objects.count() == 2
    other = api.post(URL, {"jobs": echo_specs(3)}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert other.status_code == 422


def test_uploaded_files_make_one_job_each(api, user):
    collection = processing_services.collection_create(owner=user, name="docs")
    files = [
        SimpleUploadedFile(f"note{n}.txt", f"note {n}".encode(), content_type="text/plain")
        for n in range(3)
    ]
    response = api.post(
        URL,
        {"files": files, "type": "document_processing", "collection_id": str(collection.pk)},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    jobs = Job.objects.filter(batch_id=response.json()["batch_id"])
    assert jobs.count() == 3
    assert sorted(job.params["filename"] for job in jobs) == ["note0.txt", "note1.txt", "note2.txt"]
    assert all(job.input_file for job in jobs)


def test_no_one_reads_or_steers_a_batch_that_is_not_theirs(api, other_api):
    batch_id = create(api, {"jobs": echo_specs(2)})["batch_id"]
    assert other_api.get(f"/api/v1/batches/{batch_id}").status_code == 404
    assert other_api.post(f"/api/v1/batches/{batch_id}/cancel").status_code == 404
    assert other_api.get(f"/api/v1/batches/{batch_id}/deliveries/").status_code == 404
    assert other_api.get(URL).json()["results"] == []
    assert other_api.get(f"/api/v1/jobs/?batch={batch_id}").json()["results"] == []
    assert Job.objects.filter(batch_id=batch_id, status=JobStatus.PENDING).count() == 2


def test_cancel_ends_what_has_not_ended_and_the_batch_is_told_once(
    api, django_capture_on_commit_callbacks, quiet_broker
):
    body = {"jobs": echo_specs(3), "callbackUrl": "https://hooks.example.com/jobsite"}
    created = create(api, body)
    done, *_ = created["job_ids"]
    Job.objects.filter(pk=done).update(status=JobStatus.COMPLETED, completed_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/batches/{created['batch_id']}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["cancelled"] == 2 and response.json()["stopping"] == 0
    batch = response.json()["batch"]
    assert batch["status"] == "completed" and batch["counts"]["cancelled"] == 2
    [delivery] = Delivery.objects.all()
    assert delivery.batch_id is not None and delivery.job_id is None
    assert delivery.event_type == "batch.completed"
    quiet_broker.assert_called_once_with(delivery.message_id)
    listed = api.get(f"/api/v1/batches/{created['batch_id']}/deliveries/").json()["results"]
    assert [item["webhook_id"] for item in listed] == [delivery.message_id]
    assert Batch.objects.get().completed_at is not None


def test_the_sweeper_closes_a_batch_whose_last_end_went_unnoticed(user):
    long_ago = timezone.now() - timedelta(minutes=1)
    batch = Batch.objects.create(
        owner=user, total=2, callback_url="https://hooks.example.com/x", created_at=long_ago
    )
    for status in (JobStatus.COMPLETED, JobStatus.FAILED):
        Job.objects.create(type="echo", owner=user, batch=batch, status=status)
    still = Batch.objects.create(owner=user, total=1, created_at=long_ago)
    Job.objects.create(type="echo", owner=user, batch=still, status=JobStatus.RUNNING)
    assert close_missed() == 1
    assert close_missed() == 0  # closed once, told once
    assert Delivery.objects.filter(batch=batch, event_type="batch.completed").count() == 1
    assert Batch.objects.get(pk=still.pk).completed_at is None


def test_restarting_a_job_of_an_ended_batch_opens_it_again(user):
    batch = Batch.objects.create(owner=user, total=1, completed_at=timezone.now())
    job = Job.objects.create(
        type="echo", owner=user, batch=batch, status=JobStatus.FAILED, completed_at=timezone.now()
    )
    job_restart(job, actor="user:alice")
    assert Batch.objects.get(pk=batch.pk).completed_at is None


def test_more_files_than_a_request_may_carry_is_a_clear_400(api, user, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    files = [SimpleUploadedFile(f"n{n}.txt", b"x", content_type="text/plain") for n in range(4)]
    response = api.post(URL, {"files": files, "type": "echo"}, format="multipart")
    assert 400 <= response.status_code < 500, response.content
    assert response.json()["error"]["message"]
    assert Job.objects.count() == 0
