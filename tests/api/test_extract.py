"""``POST /api/v1/extract/async`` without a worker: KnowledgeSDK's 202 with ``jobId``, the
job it makes (the same as ``POST /api/v1/jobs/`` makes), and the 400s that say why."""

from __future__ import annotations

from unittest import mock

import pytest

from jobs import publish
from jobs.models import Job
from processing import services as processing_services

pytestmark = pytest.mark.django_db

URL = "/api/v1/extract/async"


@pytest.fixture(autouse=True)
def quiet_broker():
    with mock.patch.object(publish, "publish_job", return_value=True):
        yield


@pytest.fixture
def collection_id(user) -> str:
    return str(processing_services.collection_create(owner=user, name="web").pk)


def test_answers_202_with_the_job_id_and_makes_a_web_extraction_job(api, collection_id):
    body = {
        "url": "https://example.com/post",
        "collection_id": collection_id,
        "callbackUrl": "https://hooks.example.com/jobsite",
        "render_js": True,
        "tags": ["blog"],
    }
    response = api.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    answer = response.json()
    assert (
        answer["status"] == "pending" and answer["statusUrl"] == f"/api/v1/jobs/{answer['jobId']}"
    )
    job = Job.objects.get(pk=answer["jobId"])
    assert job.type == "web_extraction" and job.queue == "web"
    assert job.callback_url == "https://hooks.example.com/jobsite"
    assert job.params["url"] == "https://example.com/post" and job.params["render_js"] is True
    assert job.params["tags"] == ["blog"]
    shown = api.get(f"/api/v1/jobs/{answer['jobId']}").json()
    assert shown["type"] == "web_extraction" and shown["status"] == "pending"


def test_an_idempotency_key_replays_the_same_job(api, collection_id):
    body = {"url": "https://example.com/post", "collection_id": collection_id}
    first = api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="x-1").json()["jobId"]
    again = api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="x-1")
    assert again.status_code == 202 and again.json()["jobId"] == first
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://10.0.0.1/"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "http://[::1]/"}, "url"),
        ({"url": "http://localhost:8000/"}, "url"),
        ({"url": "http://2130706433/"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com/", "collection_id": "nope"}, "collection_id"),
        ({"url": "https://example.com/", "callbackUrl": "http://192.168.0.1/"}, "callbackUrl"),
        ({"url": "https://example.com/", "render_js": "sometimes"}, "render_js"),
        ({"url": "https://example.com/", "surprise": 1}, "surprise"),
    ],
)
def test_bad_requests_are_400s_that_name_the_field(api, collection_id, body, field):
    body = {"collection_id": collection_id, **body}
    response = api.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert field in str(response.json()), response.json()
    assert Job.objects.count() == 0


def test_someone_elses_collection_is_refused(other_api, collection_id):
    body = {"url": "https://example.com/", "collection_id": collection_id}
    response = other_api.post(URL, body, format="json")
    assert response.status_code == 400 and "collection_id" in str(response.json())
