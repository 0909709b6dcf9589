"""Batch operations on memories end to end: jobs created through the API, run by the
platform's worker, checked in the table and through search; a cancel mid-batch and a
restart; a collection too big to delete inside its request."""

from __future__ import annotations

import io
import json

import pytest

from jobs.models import Job, JobStatus
from processing import selectors, services
from processing.models import Collection, Memory
from tests.helpers import wait_for, wait_status
from tests.processing.test_memory_ops import fill

pytestmark = [pytest.mark.worker]
DONE = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


@pytest.fixture
def collection(live, user):
    return services.collection_create(owner=user, name="notes")


def create(api, params: dict, **extra) -> str:
    response = api.post(
        "/api/v1/jobs/", {"type": "batch_operation", "params": params, **extra}, format="json"
    )
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def finish(api, params: dict) -> dict:
    job = wait_status(create(api, params), DONE, 60)
    assert job.status == JobStatus.COMPLETED, job.error_message
    return job.result


def search(api, query: str, **params) -> list[dict]:
    response = api.get("/api/v1/memories/search", {"q": query, "limit": 50, **params})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def tagged(tag: str, **where) -> int:
    return selectors.memories_with_tag(Memory.objects.filter(**where), tag).count()


def test_updates_by_ids_and_by_filter_and_a_dry_run_that_changes_nothing(
    api, collection, other_user
):
    ids = fill(collection, 40, tags=["draft"])
    theirs = fill(services.collection_create(owner=other_user, name="x"), 3, source_hash="o")
    dry = finish(
        api,
        {
            "operation": "update",
            "filter": {"collection_id": str(collection.pk), "tag": "draft"},
            "changes": {"remove_tags": ["draft"], "add_tags": ["reviewed"], "importance": 0.9},
            "dry_run": True,
            "sample_size": 3,
        },
    )
    assert dry["dry_run"] and dry["matched"] == dry["changed"] == 40 and dry["skipped"] == 0
    assert len(dry["sample"]) == 3
    assert dry["sample"][0] == {
        "id": ids[0],
        "before": {"tags": ["draft"], "importance": 0.5},
        "after": {"tags": ["reviewed"], "importance": 0.9},
    }
    assert tagged("draft", collection=collection) == 40  # nothing changed

    result = finish(
        api,
        {
            "operation": "update",
            "ids": [*ids[:10], *theirs, 999_999_999],
            "changes": {"add_tags": ["first-ten"], "metadata": {"checked": True}},
        },
    )
    assert (result["matched"], result["changed"], result["failed"]) == (10, 10, 4)
    assert result["failed_ids"] == sorted([*theirs, 999_999_999])
    assert tagged("first-ten") == 10
    assert Memory.objects.get(pk=ids[0]).metadata == {"checked": True}
    assert not Memory.objects.filter(pk__in=theirs, metadata__has_key="checked").exists()

    again = finish(
        api,
        {
            "operation": "update",
            "filter": {"collection_id": str(collection.pk), "tag": "draft"},
            "changes": {"remove_tags": ["draft"], "add_tags": ["reviewed"], "pinned": True},
        },
    )
    assert again["changed"] == 40 and again["chunks"] == 1
    assert tagged("draft") == 0 and tagged("reviewed") == 40
    assert Memory.objects.filter(collection=collection, pinned=True).count() == 40
    # Search's tag filter sees the new tags at once.
    hits = search(api, "glaciers", collection_id=str(collection.pk), tag="reviewed")
    assert len(hits) == 40 and all("reviewed" in hit["tags"] for hit in hits)
    assert search(api, "glaciers", tag="draft") == []


def test_deletes_by_filter_leave_search_right_and_moves_keep_the_unique_key(api, collection, user):
    fill(collection, 30)
    old = fill(collection, 20, source_hash="old")
    result = finish(
        api,
        {
            "operation": "delete",
            "filter": {"collection_id": str(collection.pk), "source": "old.txt"},
        },
    )
    assert result["changed"] == result["matched"] == 20
    assert not Memory.objects.filter(pk__in=old).exists()
    assert len(search(api, "glaciers", collection_id=str(collection.pk))) == 30

    target = services.collection_create(owner=user, name="archive")
    fill(target, 5)  # chunks 0-4 of source "h": moving those would break the unique key
    moved = finish(
        api,
        {
            "operation": "update",
            "filter": {"collection_id": str(collection.pk)},
            "changes": {"collection_id": str(target.pk)},
        },
    )
    assert moved["changed"] == 25 and moved["failed"] == 5
    assert moved["failed_reasons"] == {"the target collection already holds this chunk": 5}
    assert Memory.objects.filter(collection=target).count() == 30
    assert len(search(api, '"memory number"', collection_id=str(target.pk))) == 30


def test_a_batch_cancelled_midway_keeps_its_chunks_and_continues_when_restarted(api, collection):
    ids = fill(collection, 20_000)
    job_id = create(
        api,
        {
            "operation": "update",
            "filter": {"collection_id": str(collection.pk)},
            "changes": {"add_tags": ["swept"]},
            "chunk_size": 100,
        },
    )

    def midway() -> bool:
        job = Job.objects.get(pk=job_id)
        assert job.status not in DONE, "the batch ended before it could be cancelled"
        return job.checkpoint is not None and job.checkpoint["chunks"] >= 3

    wait_for(midway, 60, "a few chunks done")
    assert api.post(f"/api/v1/jobs/{job_id}/cancel/").status_code in (200, 202)
    job = wait_status(job_id, DONE, 60)
    assert job.status == JobStatus.CANCELLED
    done = job.checkpoint["changed"]
    assert 0 < done < 20_000
    assert tagged("swept") == done  # the checkpoint says exactly what is in the table

    assert api.post(f"/api/v1/jobs/{job_id}/restart/").status_code == 200
    job = wait_status(job_id, DONE, 120)
    assert job.status == JobStatus.COMPLETED, job.error_message
    # Every memory changed once: a redone chunk would have counted its memories skipped.
    assert job.result["changed"] == job.result["matched"] == 20_000
    assert job.result["skipped"] == 0 and job.result["chunks"] == 200
    assert tagged("swept", pk__in=ids) == 20_000


def test_ids_from_an_uploaded_file(api, collection):
    ids = fill(collection, 300)
    upload = io.BytesIO(json.dumps([*ids[:250], 5_000_000_000]).encode())
    upload.name = "ids.json"
    response = api.post(
        "/api/v1/jobs/",
        {"type": "batch_operation", "file": upload, "params": json.dumps({"operation": "delete"})},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    job = wait_status(response.json()["job_id"], DONE, 60)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.result["requested"] == 251 and job.result["changed"] == 250
    assert Memory.objects.filter(collection=collection).count() == 50

    bad = io.BytesIO(b"1 2 three")
    bad.name = "ids.txt"
    response = api.post(
        "/api/v1/jobs/",
        {"type": "batch_operation", "file": bad, "params": json.dumps({"operation": "delete"})},
        format="multipart",
    )
    job = wait_status(response.json()["job_id"], DONE, 60)
    assert job.status == JobStatus.FAILED and job.error_code == "ids_invalid"
    assert "'three'" in job.error_message
    assert Memory.objects.filter(collection=collection).count() == 50  # nothing touched


def test_create_refuses_what_cannot_run(api, other_api, collection):
    for params, field in [
        ({"operation": "delete"}, "ids"),  # no way of choosing
        ({"operation": "delete", "ids": [1], "filter": {"tag": "x"}}, "params"),
        ({"operation": "delete", "filter": {"collection_id": str(collection.pk)}}, None),
    ]:
        response = other_api.post(
            "/api/v1/jobs/", {"type": "batch_operation", "params": params}, format="json"
        )
        assert response.status_code == 400, response.content
        body = response.json()["error"]
        assert field is None or field in json.dumps(body["details"]), body
    # Another owner's collection does not exist for them.
    response = other_api.post(
        "/api/v1/jobs/",
        {
            "type": "batch_operation",
            "params": {"operation": "delete", "filter": {"collection_id": str(collection.pk)}},
        },
        format="json",
    )
    assert "not found" in response.json()["error"]["message"]


def test_a_big_collection_is_deleted_by_a_job_and_gone_at_once(api, collection, settings):
    settings.JOBSITE_COLLECTION_DELETE_INLINE = 100
    fill(collection, 2_500)
    small = services.collection_create(owner=collection.owner, name="small")
    fill(small, 100, source_hash="s")
    assert api.delete(f"/api/v1/collections/{small.pk}/").status_code == 204
    assert not Collection.objects.filter(pk=small.pk).exists()

    response = api.delete(f"/api/v1/collections/{collection.pk}/")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response["Location"] == f"/api/v1/jobs/{job_id}/"
    # Gone for its owner at once: reads, lists, search, new jobs.
    assert api.get(f"/api/v1/collections/{collection.pk}/").status_code == 404
    assert api.get("/api/v1/collections/").json()["results"] == []
    assert search(api, "glaciers") == []
    refused = api.post(
        "/api/v1/jobs/",
        {
            "type": "web_extraction",
            "params": {"url": "http://127.0.0.1:1/", "collection_id": str(collection.pk)},
        },
        format="json",
    )
    assert refused.status_code == 400
    job = wait_status(job_id, DONE, 60)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.result["changed"] == 2_500 and job.result["collection_deleted"] is True
    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert not Memory.objects.filter(collection_id=collection.pk).exists()
