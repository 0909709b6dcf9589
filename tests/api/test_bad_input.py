"""Malformed requests get a clear 4xx with a JSON error, never a 500."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job

pytestmark = pytest.mark.django_db
URL = "/api/v1/jobs/"


def error_of(response, status):
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()["error"]
    assert body["code"] and body["message"]
    return body


def raw(api, body: bytes | str, content_type="application/json"):
    return api.generic("POST", URL, body, content_type=content_type)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"params": {}}, "type"),
        ({"type": "echo", "bogus": 1}, "bogus"),
        ({"type": "echo", "params": {"duration_s": "soon"}}, "params.duration_s"),
        ({"type": "echo", "params": {"duration_s": -1}}, "params.duration_s"),
        ({"type": "echo", "params": {"steps": 0}}, "params.steps"),
        ({"type": "echo", "params": {"unknown": 1}}, "params.unknown"),
        ({"type": "echo", "params": [1, 2]}, "params"),
        ({"type": "echo", "params": "text"}, "params"),
        ({"type": "echo", "priority": 10}, "priority"),
        ({"type": "echo", "priority": "high"}, "priority"),
        ({"type": "echo", "max_retries": -1}, "max_retries"),
        ({"type": "echo", "run_at": "tomorrow"}, "run_at"),
        ({"type": "echo", "callback_url": "ftp://example.test/x"}, "callback_url"),
        ({"type": "echo", "callback_url": "not a url"}, "callback_url"),
        ({"type": ["echo"]}, "type"),
        ({"type": "x" * 300}, "type"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(api, body, field):
    error = error_of(api.post(URL, body, format="json"), 400)
    assert field in error["details"], error


def test_unknown_job_type_is_400_listing_known_types(api):
    error = error_of(api.post(URL, {"type": "mine_bitcoin"}, format="json"), 400)
    assert error["code"] == "unknown_job_type" and "echo" in str(error["details"]["type"])


def test_internal_task_types_cannot_be_created_through_the_api(api):
    error = error_of(api.post(URL, {"type": "tests.sample_tasks.add"}, format="json"), 400)
    assert error["code"] == "unknown_job_type"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[1, 2, 3]", b'"just a string"', b"null", b"\xff\xfe\x00", b"{" * 5000],
)
def test_malformed_bodies_are_400(api, body):
    error_of(raw(api, body), 400)


def test_unsupported_media_type_is_415(api):
    error = error_of(raw(api, "type=echo", "text/plain"), 415)
    assert error["code"] == "unsupported_media_type"


def test_oversized_body_is_413_before_reading(api, settings):
    settings.JOBSITE_MAX_JSON_BYTES = 1000
    body = json.dumps({"type": "echo", "params": {"payload": "x" * 5000}})
    error_of(raw(api, body), 413)
    assert Job.objects.count() == 0


def test_oversized_upload_is_413(api, settings):
    settings.JOBSITE_MAX_UPLOAD_BYTES = 1000
    upload = SimpleUploadedFile("big.txt", b"x" * 5000, content_type="text/plain")
    response = api.post(URL, {"type": "echo", "file": upload}, format="multipart")
    error_of(response, 413)


def test_file_for_a_type_that_takes_none_is_400(api):
    upload = SimpleUploadedFile("a.txt", b"hello", content_type="text/plain")
    error = error_of(api.post(URL, {"type": "echo", "file": upload}, format="multipart"), 400)
    assert "file" in error["details"]


def test_multipart_params_must_be_json(api):
    error = error_of(api.post(URL, {"type": "echo", "params": "{oops"}, format="multipart"), 400)
    assert "params" in error["details"]
    ok = api.post(URL, {"type": "echo", "params": '{"duration_s": 1}'}, format="multipart")
    assert ok.status_code == 202 and ok.json()["params"]["duration_s"] == 1.0


def test_idempotency_key_too_long_is_400(api):
    response = api.post(URL, {"type": "echo"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 300)
    error_of(response, 400)


@pytest.mark.parametrize("job_id", ["nope", "1234", "%00", "../../etc", "0" * 40])
def test_malformed_ids_are_404(api, job_id):
    for path in (f"/api/v1/jobs/{job_id}/", f"/api/v1/jobs/status/{job_id}"):
        error_of(api.get(path), 404)
    error_of(api.post(f"/api/v1/jobs/{job_id}/cancel/"), 404)


def test_unknown_api_path_is_json_404(api):
    error_of(api.get("/api/v1/nothing-here/"), 404)


def test_wrong_method_is_405(api):
    error_of(api.delete(URL), 405)
    error_of(api.get("/api/v1/jobs/cancel/00000000-0000-0000-0000-000000000000"), 405)


def test_bad_content_length_is_400(api):
    response = api.generic(
        "POST", URL, b"{}", content_type="application/json", CONTENT_LENGTH="lots"
    )
    error_of(response, 400)


def test_broker_down_at_create_still_answers_202(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    from jobs import publish

    def down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(publish.app, "send_task", down)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(URL, {"type": "echo"}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "pending"


@pytest.mark.parametrize(
    "value",
    ["0809-03-21T20:37:58+19:56", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"],
)
def test_list_dates_with_odd_offsets_are_answered_never_500(api, value):
    # PostgreSQL refuses UTC offsets past ±15:59 that Python parses (found by fuzzing).
    for url in ("/api/v1/jobs/", "/api/v1/memories/"):
        response = api.get(url, {"created_before": value})
        assert response.status_code in (200, 400), (url, value, response.content)
