"""Memory consolidation on a generated collection whose duplicates and old, unimportant
memories are known: the expected merges and summaries happen, pinned and important
memories stay as they were, restore brings back the exact texts, a second run changes
nothing; summaries, sentence splitting and shingles on their own."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from processing import consolidation, services, summaries
from processing.consolidation import ConsolidationParams
from processing.models import Memory, MemoryArchive
from tests.processing.test_memory_ops import Reporter as BatchReporter

pytestmark = pytest.mark.django_db
VOCABULARY = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ti") for b in
              ("bar", "den", "fil", "gor", "hum", "jak", "lin", "mos", "nep", "quor")]  # fmt: skip
OLD = timezone.now() - timedelta(days=90)


class Reporter(BatchReporter):
    def check(self) -> None:
        pass


def text(rng: random.Random, sentences: int = 6) -> str:
    return " ".join(
        " ".join(rng.choice(VOCABULARY) for _ in range(10)).capitalize() + "."
        for _ in range(sentences)
    )


def add(collection, source: str, texts: list[str], **fields) -> list[Memory]:
    rows = [
        Memory(
            collection=collection,
            source=f"{source}.txt",
            source_type="text",
            source_hash=source,
            chunk_index=i,
            page=i + 1,
            position={"blocks": [i, i]},
            text=body,
            content_hash=services.content_hash(body),
            **fields,
        )
        for i, body in enumerate(texts)
    ]
    return Memory.objects.bulk_create(rows)


@pytest.fixture
def known(user):
    """A collection with one group of three duplicates, and old unimportant runs."""
    rng = random.Random(19)
    collection = services.collection_create(owner=user, name="known")
    old = {"created_at": OLD, "importance": 0.2}
    add(collection, "a", [text(rng) for _ in range(12)], **old)  # runs of 10 and 2
    b = add(collection, "b", [text(rng) for _ in range(6)], **old)
    Memory.objects.filter(pk=b[3].pk).update(pinned=True)  # splits b into runs of 3 and 2
    add(collection, "c", [text(rng) for _ in range(4)], created_at=OLD, importance=0.9)
    add(collection, "d", [text(rng) for _ in range(4)], importance=0.2)  # recent
    shared = text(rng, sentences=8)
    words = shared.split()
    near = " ".join([*words[:-1], "different."])  # one word of 80 differs
    add(collection, "e", [shared], importance=0.4)
    add(collection, "f", [shared], importance=0.7, tags=["kept"])
    add(collection, "g", [near], importance=0.3, tags=["near"])
    return collection


def run(collection, user, **params) -> dict:
    params = ConsolidationParams.model_validate({"collection_id": str(collection.pk), **params})
    return consolidation.consolidate(params, Reporter(user.pk))


def test_duplicates_merge_and_old_runs_are_summarised_and_the_rest_stays(known, user):
    untouched = {
        m.pk: m.text
        for m in Memory.objects.filter(collection=known)
        if m.source_hash in ("c", "d") or m.pinned
    }
    dry = run(known, user, dry_run=True)
    assert (dry["merged"], dry["summaries"], dry["summarised"]) == (2, 4, 17)
    assert Memory.objects.filter(collection=known).count() == dry["memories_before"] == 29

    result = run(known, user)
    assert result["duplicate_groups"] == 1 and result["merged"] == 2
    assert result["summaries"] == 4 and result["summarised"] == 17
    assert result["archived"] == 19
    assert result["memories_after"] == 29 - 2 - 17 + 4
    assert result["bytes_after"] < 0.6 * result["bytes_before"]
    assert 0 < result["archive_bytes"] < result["bytes_before"] - result["bytes_after"]

    keeper = Memory.objects.get(collection=known, source_hash__in=["e", "f", "g"])
    assert keeper.source_hash == "f" and keeper.importance == 0.7
    assert sorted(keeper.tags) == ["kept", "near"]
    merged_from = keeper.metadata["merged_from"]
    assert sorted(ref["source"] for ref in merged_from) == ["e.txt", "g.txt"]
    assert all(ref["page"] == 1 and ref["archive_id"] for ref in merged_from)

    made = Memory.objects.filter(collection=known, metadata__has_key="consolidated")
    assert sorted((m.source_hash, len(m.position["summary_of"])) for m in made) == [
        ("a", 2), ("a", 10), ("b", 2), ("b", 3)
    ]  # fmt: skip
    for memory in made:
        assert memory.importance == 0.2 and memory.created_at == OLD
        assert memory.metadata["consolidated"]["memories"] == len(memory.position["summary_of"])
    # Pinned, important and recent memories are as they were.
    for pk, body in untouched.items():
        assert Memory.objects.get(pk=pk).text == body

    again = run(known, user)
    assert (again["merged"], again["summarised"], again["archived"]) == (0, 0, 0)
    assert again["memories_after"] == result["memories_after"]


def test_restore_brings_back_the_exact_texts_under_their_ids(known, user):
    before = {m.pk: (m.text, m.chunk_index) for m in Memory.objects.filter(collection=known)}
    run(known, user)
    for archive in MemoryArchive.objects.filter(collection=known):
        services.memory_archive_restore(archive)
    after = {m.pk: (m.text, m.chunk_index) for m in Memory.objects.filter(collection=known)}
    assert after == before  # every summary gone, every original back
    keeper = Memory.objects.get(source_hash="f")
    assert "merged_from" not in keeper.metadata
    with pytest.raises(Exception, match="restored already"):
        services.memory_archive_restore(MemoryArchive.objects.filter(collection=known).first())


def test_a_summary_keeps_the_sentences_dense_in_the_text_s_own_terms():
    chunks = [
        "The glacier moved. It was a Tuesday. The glacier carved the valley floor.",
        "The glacier carved the valley floor. Lunch was served at noon. Ice and glacier "
        "meltwater filled the valley lake.",
    ]
    summary = summaries.summarise(chunks, ratio=0.4)
    assert summary == (
        "The glacier carved the valley floor. Ice and glacier meltwater filled the valley lake."
    )
    assert summaries.summarise([""], 0.5) == ""


def test_shingles_are_word_triples():
    assert consolidation.shingles("A b c d") == {"a b c", "b c d"}
    assert consolidation.shingles("two words") == {"two words"}
    assert consolidation.shingles("") == set()
