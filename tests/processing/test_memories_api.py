"""Collections, memories and search through the API, on this run's database (SQLite FTS5
on the embedded default, PostgreSQL full-text search on the other run)."""

from __future__ import annotations

import uuid

import pytest

from processing import access, services
from processing.chunking import Chunk
from processing.models import Collection, Memory

pytestmark = pytest.mark.django_db


def store(collection, texts, *, source="notes.txt", source_hash="h1", job_id=None, tags=()):
    chunks = [
        Chunk(text=text, unit=page, unit_kind="page", blocks=(0, 0))
        for page, text in enumerate(texts, start=1)
    ]
    return services.memories_store(
        collection_id=collection.pk,
        job_id=job_id,
        source=source,
        source_type="text",
        source_hash=source_hash,
        chunks=chunks,
        tags=tags,
    )


@pytest.fixture
def collection(api):
    response = api.post("/api/v1/collections/", {"name": "Books"}, format="json")
    assert response.status_code == 201, response.content
    return Collection.objects.get(pk=response.json()["id"])


def test_collections_crud(api, collection):
    assert api.post("/api/v1/collections/", {"name": "Books"}, format="json").status_code == 409
    bad = api.post(
        "/api/v1/collections/",
        {"name": "X", "chunk_size": 400, "chunk_overlap": 300},
        format="json",
    )
    assert bad.status_code == 400 and "chunk_overlap" in bad.json()["error"]["details"]
    listed = api.get("/api/v1/collections/").json()["results"]
    assert [c["name"] for c in listed] == ["Books"] and listed[0]["memory_count"] == 0
    patched = api.patch(
        f"/api/v1/collections/{collection.pk}/", {"description": "mine"}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["description"] == "mine"
    store(collection, ["one", "two"])
    assert api.get(f"/api/v1/collections/{collection.pk}/").json()["memory_count"] == 2
    assert api.delete(f"/api/v1/collections/{collection.pk}/").status_code == 204
    assert Memory.objects.count() == 0
    assert api.get(f"/api/v1/collections/{collection.pk}/").status_code == 404


def test_storing_the_same_source_twice_replaces_instead_of_duplicating(collection):
    first = store(collection, ["alpha text", "beta text", "gamma text"])
    assert (first.created, first.updated, first.removed) == (3, 0, 0)
    memory = Memory.objects.get(chunk_index=1)
    services.memory_update(memory, tags=["keep"], importance=0.9)
    second = store(collection, ["alpha text", "beta text revised"])
    assert (second.created, second.updated, second.removed) == (0, 2, 1)
    assert Memory.objects.count() == 2
    memory.refresh_from_db()
    assert memory.text == "beta text revised" and memory.tags == ["keep"]
    assert memory.importance == 0.9
    other = store(collection, ["alpha text"], source_hash="h2", source="other.txt")
    assert other.created == 1 and Memory.objects.count() == 3


def test_search_ranks_highlights_and_cites_the_page(api, collection):
    access.flush()  # counts other tests left behind
    store(
        collection,
        [
            "Compact spaces are closed and bounded in Euclidean space.",
            "A topological space is <b>Hausdorff</b> when distinct points have disjoint "
            "neighbourhoods; Hausdorff spaces have unique limits.",
            "Nothing to see on this page.",
        ],
        source="topology.pdf",
    )
    response = api.get(
        "/api/v1/memories/search", {"q": "hausdorff limits", "collection_id": collection.pk}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 1
    hit = body["results"][0]
    assert hit["page"] == 2 and hit["source"] == "topology.pdf"
    assert "<mark>Hausdorff</mark>" in hit["snippet"] or "<mark>hausdorff</mark>" in (
        hit["snippet"].lower()
    )
    # The memory's own markup never comes back as live HTML (escaped, or dropped by
    # PostgreSQL's headline parser).
    assert "<b>" not in hit["snippet"]
    assert "<b>Hausdorff</b>" in hit["text"]
    # Counted in Redis first, folded into the table by the periodic flush.
    assert Memory.objects.get(pk=hit["memory_id"]).access_count == 0
    assert access.flush() == 1
    api.get(f"/api/v1/memories/{hit['memory_id']}/")
    api.get("/api/v1/memories/search", {"q": "hausdorff"})
    assert access.flush() == 1 and access.flush() == 0
    counted = Memory.objects.get(pk=hit["memory_id"])
    assert counted.access_count == 3 and counted.last_accessed_at is not None

    phrase = api.get("/api/v1/memories/search", {"q": '"closed and bounded"'}).json()
    assert [r["page"] for r in phrase["results"]] == [1]
    wrong_order = api.get("/api/v1/memories/search", {"q": '"bounded and closed"'}).json()
    assert wrong_order["results"] == []
    excluded = api.get("/api/v1/memories/search", {"q": "spaces -compact"}).json()
    assert [r["page"] for r in excluded["results"]] == [2]


def test_search_ranks_the_better_match_first(api, collection):
    store(collection, ["kernel " + "filler " * 40, "kernel kernel kernel methods"])
    results = api.get("/api/v1/memories/search", {"q": "kernel"}).json()["results"]
    assert [r["page"] for r in results] == [2, 1]
    assert results[0]["score"] > results[1]["score"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "-only -excluded"},
        {"q": "!!! ???"},
        {"q": "x", "limit": "0"},
        {"q": "x", "limit": "abc"},
        {"q": "x", "collection_id": "not-a-uuid"},
        {"q": " ".join(f"w{i}" for i in range(40))},
    ],
)
def test_bad_search_queries_are_400s(api, collection, params):
    response = api.get("/api/v1/memories/search", params)
    assert response.status_code == 400, response.content
    assert "error" in response.json()


def test_search_syntax_characters_are_plain_text(api, collection):
    store(collection, ["fts5 syntax: NEAR AND OR NOT * ^ col:value (x)"])
    for q in ["NEAR(", "col:value", "a*", "^start", "(x", 'x" OR "y', "AND", "'; DROP"]:
        response = api.get("/api/v1/memories/search", {"q": q})
        assert response.status_code in (200, 400), (q, response.content)


def test_memories_list_filters_get_update_delete(api, collection):
    job = uuid.uuid4()
    store(collection, ["a", "b"], job_id=job, tags=["draft"])
    store(collection, ["c"], source_hash="h2")
    listed = api.get("/api/v1/memories/", {"job_id": str(job)}).json()["results"]
    assert sorted(m["text"] for m in listed) == ["a", "b"]
    tagged = api.get("/api/v1/memories/", {"tag": "draft"}).json()["results"]
    assert len(tagged) == 2
    memory_id = listed[0]["id"]
    patched = api.patch(
        f"/api/v1/memories/{memory_id}/",
        {"tags": ["final", "final", " x "], "importance": 1.0, "metadata": {"k": 1}},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["tags"] == ["final", "x"]
    assert [m["id"] for m in api.get("/api/v1/memories/", {"tag": "final"}).json()["results"]] == [
        memory_id
    ]
    assert (
        api.patch(f"/api/v1/memories/{memory_id}/", {"importance": 2}, format="json").status_code
        == 400
    )
    assert (
        api.patch(f"/api/v1/memories/{memory_id}/", {"text": "x"}, format="json").status_code == 400
    )
    got = api.get(f"/api/v1/memories/{memory_id}/").json()
    assert got["importance"] == 1.0
    assert api.delete(f"/api/v1/memories/{memory_id}/").status_code == 204
    assert api.get(f"/api/v1/memories/{memory_id}/").status_code == 404
    for bad in ("abc", "0", "-1", "99999999999999999999999"):
        assert api.get(f"/api/v1/memories/{bad}/").status_code == 404


def test_owners_never_see_each_others_collections_or_memories(api, other_api, collection):
    store(collection, ["secret plans for the weekend"])
    memory = Memory.objects.get()
    assert other_api.get(f"/api/v1/collections/{collection.pk}/").status_code == 404
    assert (
        other_api.patch(
            f"/api/v1/collections/{collection.pk}/", {"name": "mine"}, format="json"
        ).status_code
        == 404
    )
    assert other_api.delete(f"/api/v1/collections/{collection.pk}/").status_code == 404
    assert other_api.get("/api/v1/collections/").json()["results"] == []
    assert other_api.get(f"/api/v1/memories/{memory.pk}/").status_code == 404
    assert other_api.delete(f"/api/v1/memories/{memory.pk}/").status_code == 404
    assert other_api.get("/api/v1/memories/").json()["results"] == []
    search = other_api.get("/api/v1/memories/search", {"q": "secret plans"})
    assert search.status_code == 200 and search.json()["results"] == []
    scoped = other_api.get(
        "/api/v1/memories/search", {"q": "secret", "collection_id": collection.pk}
    )
    assert scoped.status_code == 404
    # Nor can a job put memories into someone else's collection.
    response = other_api.post(
        "/api/v1/jobs/",
        {
            "type": "document_processing",
            "collection_id": str(collection.pk),
            "file_url": "https://example.com/a.pdf",
        },
        format="json",
    )
    assert response.status_code == 400 and "collection_id" in response.json()["error"]["details"]
    assert Memory.objects.count() == 1


def test_document_job_create_validation(api, collection):
    def create(**body):
        return api.post("/api/v1/jobs/", {"type": "document_processing", **body}, format="json")

    neither = create(collection_id=str(collection.pk))
    assert neither.status_code == 400 and "file" in neither.json()["error"]["details"]
    bad_url = create(collection_id=str(collection.pk), file_url="ftp://example.com/x.pdf")
    assert bad_url.status_code == 400
    conflict = create(
        collection_id=str(collection.pk),
        params={"collection_id": str(uuid.uuid4())},
        file_url="https://example.com/a.pdf",
    )
    assert conflict.status_code == 400 and "collection_id" in conflict.json()["error"]["details"]
    ok = create(collection_id=str(collection.pk), file_url="https://example.com/a.pdf")
    assert ok.status_code == 202, ok.content
    assert ok.json()["params"]["collection_id"] == str(collection.pk)
    assert ok.json()["queue"] == "documents"


def test_admin_lists_memories_and_edits_only_tags_metadata_importance(admin_client, collection):
    store(collection, ["operator visible text"])
    memory = Memory.objects.get()
    assert admin_client.get("/admin/processing/memory/").status_code == 200
    assert admin_client.get("/admin/processing/collection/").status_code == 200
    page = admin_client.get(f"/admin/processing/memory/{memory.pk}/change/")
    assert page.status_code == 200 and b"operator visible text" in page.content
    response = admin_client.post(
        f"/admin/processing/memory/{memory.pk}/change/",
        {"tags": '["reviewed"]', "metadata": "{}", "importance": "0.8", "text": "changed"},
    )
    assert response.status_code == 302, response.content[:2000]
    memory.refresh_from_db()
    assert memory.tags == ["reviewed"] and memory.importance == 0.8
    assert memory.text == "operator visible text"
