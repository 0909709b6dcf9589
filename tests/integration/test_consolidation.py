"""Consolidation end to end: a job through the API and the platform's worker, search
finding a summary by its key terms and saying how to restore it, and the restore, for
the owner only."""

from __future__ import annotations

import pytest

from jobs.models import JobStatus
from processing.models import Memory, MemoryArchive
from tests.helpers import wait_status
from tests.processing.test_consolidation import known  # noqa: F401 - the fixture

pytestmark = [pytest.mark.worker]
DONE = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


def test_a_consolidation_job_then_search_and_restore(live, api, other_api, known):  # noqa: F811
    response = api.post(
        "/api/v1/jobs/",
        {"type": "memory_consolidation", "params": {"collection_id": str(known.pk)}},
        format="json",
    )
    assert response.status_code == 202, response.content
    job = wait_status(response.json()["job_id"], DONE, 60)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.result["summaries"] == 4 and job.result["merged"] == 2

    summary = Memory.objects.filter(collection=known, metadata__has_key="consolidated").first()
    word = max(summary.text.split(), key=len).strip(".").lower()
    hits = api.get(
        "/api/v1/memories/search", {"q": word, "collection_id": str(known.pk), "limit": 50}
    ).json()["results"]
    found = next(hit for hit in hits if hit["memory_id"] == summary.pk)
    archive_id = found["consolidated"]["archive_id"]
    assert found["consolidated"]["kind"] == "summary"
    assert found["consolidated"]["restore"] == f"/api/v1/memory-archives/{archive_id}/restore/"
    for hit in hits:  # a summary says so; any other memory does not
        stored = Memory.objects.get(pk=hit["memory_id"]).metadata.get("consolidated")
        assert hit["consolidated"] == stored

    listed = api.get("/api/v1/memory-archives/", {"collection_id": str(known.pk)}).json()
    assert sorted(a["kind"] for a in listed["results"]) == ["merge"] + ["summary"] * 4
    assert other_api.get("/api/v1/memory-archives/").json()["results"] == []
    assert other_api.post(found["consolidated"]["restore"]).status_code == 404

    archive = MemoryArchive.objects.get(pk=archive_id)
    originals = archive.count
    restored = api.post(found["consolidated"]["restore"])
    assert restored.status_code == 200, restored.content
    assert restored.json()["restored_at"] is not None
    assert not Memory.objects.filter(pk=summary.pk).exists()
    assert (
        Memory.objects.filter(
            collection=known,
            chunk_index__in=summary.position["summary_of"],
            source_hash=summary.source_hash,
        ).count()
        == originals
    )
    again = api.post(found["consolidated"]["restore"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "archive_restored"
