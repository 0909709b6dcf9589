"""The jobs API in-process: shapes, Compileo paths, filters, pagination, isolation."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.auth import api_key_revoke
from jobs.models import Job, JobStatus
from tests.helpers import make_client

pytestmark = pytest.mark.django_db

ECHO = {"type": "echo", "params": {"duration_s": 1, "payload": {"x": 1}}}


def post(api, body=ECHO, **headers):
    return api.post("/api/v1/jobs/", body, format="json", **headers)


def test_create_returns_202_with_compileo_and_hebbrix_fields(api):
    response = post(api)
    assert response.status_code == 202, response.content
    body = response.json()
    for field in (
        "job_id",
        "id",
        "status",
        "progress",
        "current_step",
        "result",
        "error",
        "error_message",
        "created_at",
        "started_at",
        "completed_at",
        "updated_at",
        "type",
        "attempts",
        "max_retries",
        "duration",
    ):
        assert field in body
    assert body["status"] == "pending" and body["type"] == "echo"
    assert response["Location"] == f"/api/v1/jobs/{body['job_id']}/"


def test_status_on_our_path_and_compileo_path(api):
    job_id = post(api).json()["job_id"]
    ours = api.get(f"/api/v1/jobs/{job_id}/")
    theirs = api.get(f"/api/v1/jobs/status/{job_id}")
    assert ours.status_code == theirs.status_code == 200
    mine, compileo = ours.json(), theirs.json()
    assert mine.pop("status_page").startswith(f"/jobs/{job_id}/?token=")
    assert compileo.pop("status_page").startswith(f"/jobs/{job_id}/?token=")
    assert mine == compileo


def test_failed_job_shows_error_code_and_message_but_never_the_traceback(api, user):
    job_id = post(api).json()["job_id"]
    Job.objects.filter(pk=job_id).update(
        status=JobStatus.FAILED,
        error_code="bad_file",
        error_message="PDF is encrypted",
        error_traceback="Traceback: secret internals",
    )
    body = api.get(f"/api/v1/jobs/{job_id}/").json()
    assert body["error"] == {"code": "bad_file", "message": "PDF is encrypted"}
    assert body["error_message"] == "PDF is encrypted"
    assert "secret internals" not in str(body)


def test_cancel_and_restart_on_both_paths(api):
    first = post(api).json()["job_id"]
    response = api.post(f"/api/v1/jobs/{first}/cancel/")
    assert response.status_code == 200
    assert response.json()["message"] == f"Job {first} cancelled successfully"
    assert response.json()["job"]["status"] == "cancelled"
    response = api.post(f"/api/v1/jobs/restart/{first}")
    assert response.status_code == 200 and response.json()["job"]["status"] == "pending"
    assert api.post(f"/api/v1/jobs/cancel/{first}").status_code == 200


def test_cancel_finished_is_409_restart_pending_is_409(api):
    job_id = post(api).json()["job_id"]
    assert api.post(f"/api/v1/jobs/{job_id}/restart/").status_code == 409
    Job.objects.filter(pk=job_id).update(status=JobStatus.COMPLETED)
    response = api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_not_cancellable"


def test_cancel_running_is_202_and_says_stopping(api):
    job_id = post(api).json()["job_id"]
    Job.objects.filter(pk=job_id).update(status=JobStatus.RUNNING, celery_task_id="t")
    response = api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 202
    assert response.json()["job"]["cancel_requested"] is True


def test_events_list_transitions_with_actor(api):
    job_id = post(api).json()["job_id"]
    api.post(f"/api/v1/jobs/{job_id}/cancel/")
    events = api.get(f"/api/v1/jobs/{job_id}/events/").json()["results"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        ("", "pending"),
        ("pending", "cancelled"),
    ]
    assert all(e["actor"].startswith("api_key:jsk_") for e in events)


def test_list_filters_and_cursor_pagination(api):
    ids = [post(api).json()["job_id"] for _ in range(5)]
    Job.objects.filter(pk=ids[0]).update(status=JobStatus.FAILED)
    Job.objects.filter(pk=ids[1]).update(status=JobStatus.COMPLETED)
    failed = api.get("/api/v1/jobs/?status=failed,completed").json()["results"]
    assert {j["job_id"] for j in failed} == {ids[0], ids[1]}
    page = api.get("/api/v1/jobs/?limit=2").json()
    seen = [j["job_id"] for j in page["results"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [j["job_id"] for j in page["results"]]
    assert seen == list(reversed(ids))
    soon = (timezone.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert api.get("/api/v1/jobs/", {"created_after": soon}).json()["results"] == []
    assert len(api.get("/api/v1/jobs/", {"type": "echo"}).json()["results"]) == 5


def test_bad_filters_are_400(api):
    assert api.get("/api/v1/jobs/?status=sleeping").status_code == 400
    assert api.get("/api/v1/jobs/?created_after=yesterday").status_code == 400
    assert api.get("/api/v1/jobs/?cursor=garbage").status_code == 400


def test_another_owners_job_is_404_everywhere(api, other_api):
    job_id = post(api).json()["job_id"]
    for method, path in [
        ("get", f"/api/v1/jobs/{job_id}/"),
        ("get", f"/api/v1/jobs/status/{job_id}"),
        ("get", f"/api/v1/jobs/{job_id}/events/"),
        ("post", f"/api/v1/jobs/{job_id}/cancel/"),
        ("post", f"/api/v1/jobs/cancel/{job_id}"),
        ("post", f"/api/v1/jobs/{job_id}/restart/"),
        ("post", f"/api/v1/jobs/restart/{job_id}"),
    ]:
        response = getattr(other_api, method)(path)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
    assert other_api.get("/api/v1/jobs/").json()["results"] == []
    assert Job.objects.get(pk=job_id).status == JobStatus.PENDING


def test_queue_stats_counts_own_jobs(api, other_api):
    for _ in range(3):
        post(api)
    post(other_api)
    stats = api.get("/api/v1/jobs/queue/stats").json()
    assert stats["pending_jobs"] == 3 and stats["total_jobs"] == 3
    assert stats["queue_type"] == "redis"
    assert stats["queues"]["default"]["oldest_pending_age_s"] >= 0
    assert stats["queue_health"]["status"] in {"healthy", "degraded", "unhealthy"}


def test_idempotency_key_replay_and_mismatch(api):
    first = post(api, HTTP_IDEMPOTENCY_KEY="abc")
    replay = post(api, HTTP_IDEMPOTENCY_KEY="abc")
    assert first.status_code == replay.status_code == 202
    assert replay.json()["job_id"] == first.json()["job_id"]
    assert replay["Idempotent-Replayed"] == "true"
    other = post(api, {**ECHO, "params": {"duration_s": 2}}, HTTP_IDEMPOTENCY_KEY="abc")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert Job.objects.count() == 1


def test_scheduled_job(api):
    run_at = (timezone.now() + timedelta(minutes=10)).isoformat()
    body = post(api, {**ECHO, "run_at": run_at}).json()
    assert body["status"] == "scheduled" and body["run_at"]


def test_auth_required_and_bad_keys_are_401(api, user):
    assert make_client(user).get("/api/v1/jobs/").status_code == 200
    from rest_framework.test import APIClient

    anonymous = APIClient()
    assert anonymous.get("/api/v1/jobs/").status_code == 401
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer jsk_nothere.nope")
    response = anonymous.get("/api/v1/jobs/")
    assert (
        response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    )
    anonymous.credentials(HTTP_X_API_KEY="not-a-key")
    assert anonymous.get("/api/v1/jobs/").status_code == 401
    good = APIClient()
    good.credentials(HTTP_X_API_KEY=api.api_key)
    assert good.get("/api/v1/jobs/").status_code == 200


def test_revoked_key_is_401_at_once(user):
    client = make_client(user)
    assert client.get("/api/v1/jobs/").status_code == 200
    from jobs.models import ApiKey

    for key in ApiKey.objects.filter(user=user):
        api_key_revoke(key)
    assert client.get("/api/v1/jobs/").status_code == 401


def test_only_a_hash_of_the_key_is_stored(api):
    from jobs.models import ApiKey

    row = ApiKey.objects.get()
    secret = api.api_key.split(".", 1)[1]
    assert secret not in row.hashed_key and len(row.hashed_key) == 64
    assert api.api_key.startswith(f"jsk_{row.prefix}.")


def test_throttled_per_key_with_retry_after(api, other_api, monkeypatch):
    from jobs.auth import ApiKeyRateThrottle

    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/min"})
    codes = [api.get("/api/v1/jobs/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get("/api/v1/jobs/")
    assert response.json()["error"]["code"] == "throttled" and int(response["Retry-After"]) > 0
    assert other_api.get("/api/v1/jobs/").status_code == 200  # another key, its own budget


def test_job_types_list_echo_with_schema(api):
    types = {t["name"]: t for t in api.get("/api/v1/job-types/").json()}
    assert "echo" in types
    assert set(types["echo"]["params_schema"]["properties"]) == {
        "duration_s",
        "steps",
        "fail_times",
        "payload",
        "write_payload",
        "allocate_mb",
    }


def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ("/api/v1/jobs/", "/api/v1/jobs/status/{job_id}", "/api/v1/jobs/queue/stats"):
        assert path in text
    assert client.get("/api/docs/").status_code == 200


def test_unknown_uuid_is_404(api):
    assert api.get(f"/api/v1/jobs/{uuid.uuid4()}/").status_code == 404


def test_job_json_has_exactly_the_documented_fields(api):
    from jobs.api.serializers import JobSerializer

    job = Job.objects.get(pk=post(api).json()["job_id"])
    assert list(JobSerializer(job).data) == list(JobSerializer().fields)
