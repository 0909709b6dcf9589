"""Batch operations on memories without a worker: what an update does to one memory, id
files, parameter checks, and the chunk loop's checkpoint (a cancel mid-batch, then a
restart that continues) driven through a reporter of our own."""

from __future__ import annotations

import json
import uuid

import pytest

from jobs.errors import JobCancelled
from processing import memory_ops, selectors, services
from processing.memory_ops import BatchOperationParams, MemoryChanges
from processing.models import Memory

pytestmark = pytest.mark.django_db


def fill(collection, count: int, *, tags=(), source_hash="h") -> list[int]:
    """``count`` memories in one statement (the search index triggers run too)."""
    rows = [
        Memory(
            collection=collection,
            source=f"{source_hash}.txt",
            source_type="text",
            source_hash=source_hash,
            chunk_index=i,
            page=1,
            text=f"memory number {i} about glaciers",
            content_hash=str(i),
            tags=list(tags),
        )
        for i in range(count)
    ]
    Memory.objects.bulk_create(rows, batch_size=2000)
    return list(
        Memory.objects.filter(collection=collection, source_hash=source_hash)
        .order_by("id")
        .values_list("id", flat=True)
    )


ROW = {
    "id": 1,
    "tags": ["draft", "a"],
    "metadata": {"lang": "en", "old": 1},
    "importance": 0.5,
    "pinned": False,
    "collection_id": uuid.UUID(int=1),
}


def test_an_update_changes_only_what_differs():
    changes = MemoryChanges(add_tags=["b", "a"], remove_tags=["draft"])
    assert memory_ops.changed_values(ROW, changes) == {"tags": ["a", "b"]}
    assert memory_ops.changed_values(ROW, MemoryChanges(add_tags=["a"])) == {}
    assert memory_ops.changed_values(ROW, MemoryChanges(set_tags=[" x ", "x"])) == {"tags": ["x"]}
    merged = memory_ops.changed_values(ROW, MemoryChanges(metadata={"old": None, "new": 2}))
    assert merged == {"metadata": {"lang": "en", "new": 2}}
    assert memory_ops.changed_values(ROW, MemoryChanges(metadata={"lang": "en"})) == {}
    assert memory_ops.changed_values(ROW, MemoryChanges(importance=0.5, pinned=True)) == {
        "pinned": True
    }
    moved = memory_ops.changed_values(ROW, MemoryChanges(collection_id=uuid.UUID(int=2)))
    assert moved == {"collection_id": uuid.UUID(int=2)}


@pytest.mark.parametrize(
    "params, words",
    [
        ({"operation": "update", "ids": [1]}, "needs changes"),
        ({"operation": "delete", "ids": [1], "changes": {"pinned": True}}, "takes no changes"),
        ({"operation": "delete", "ids": [1], "filter": {"tag": "x"}}, "not both"),
        ({"operation": "delete", "filter": {}}, "at least one condition"),
        (
            {"operation": "update", "ids": [1], "changes": {"set_tags": ["a"], "add_tags": ["b"]}},
            "set_tags replaces",
        ),
        ({"operation": "update", "ids": [1], "changes": {}}, "must change something"),
        (
            {"operation": "delete", "filter": {"tag": "x"}, "delete_collection": True},
            "delete_collection goes with",
        ),
        ({"operation": "update", "ids": [1], "changes": {"add_tags": [""]}}, "non-empty"),
    ],
)
def test_parameters_that_cannot_run_are_refused(params, words):
    with pytest.raises(ValueError, match=words):
        BatchOperationParams.model_validate(params)


def test_id_files_are_json_arrays_or_separated_integers(tmp_path):
    path = tmp_path / "ids"
    path.write_text("[3, 1, 2]")
    assert memory_ops.read_id_file(path) == [3, 1, 2]
    path.write_text("5\n6, 7\t8\n")
    assert memory_ops.read_id_file(path) == [5, 6, 7, 8]
    for text, words in [
        ("[1, 2", "not valid JSON"),
        ('{"ids": [1]}', "array of integers"),
        ("[1, true]", "array of integers"),
        ("1 2 three", "'three', which is not a memory id"),
    ]:
        path.write_text(text)
        with pytest.raises(Exception, match=words) as failed:
            memory_ops.read_id_file(path)
        assert failed.value.code == "ids_invalid"
    path.write_text(" ".join(["1"] * (memory_ops.MAX_IDS + 1)))
    with pytest.raises(Exception, match="at most 100,000"):
        memory_ops.read_id_file(path)


class Reporter:
    """A job's reporter for running the pipeline in this process: checkpoints kept here
    (committed with the chunk's transaction, as the real one's), and a cancel that arrives
    while the ``cancel_at``-th chunk is being written."""

    def __init__(self, owner_id, cancel_at: int | None = None, saved=None) -> None:
        self.owner_id = owner_id
        self.job_id = uuid.uuid4()
        self.input_path = None
        self.saved = saved
        self.cancel_at = cancel_at
        self.checkpoints = 0
        self.steps: list[str] = []

    def __call__(self, percent, step=None):
        self.steps.append(step)

    def checkpoint(self, state):
        self.checkpoints += 1
        if self.checkpoints == self.cancel_at:
            raise JobCancelled("cancelled by its owner")
        self.saved = json.loads(json.dumps(state))

    def resume(self):
        return self.saved


def run(params: dict, reporter: Reporter) -> dict:
    return memory_ops.batch_operation(BatchOperationParams.model_validate(params), reporter)


def test_a_cancel_between_chunks_keeps_what_is_done_and_a_restart_continues(user):
    collection = services.collection_create(owner=user, name="c")
    ids = fill(collection, 1000)
    params = {
        "operation": "update",
        "filter": {"collection_id": str(collection.pk)},
        "changes": {"add_tags": ["seen"]},
        "chunk_size": 100,
    }
    first = Reporter(user.pk, cancel_at=4)
    with pytest.raises(JobCancelled):
        run(params, first)
    # Three chunks committed with their checkpoint; the fourth rolled back with the cancel.
    tagged = selectors.memories_with_tag(Memory.objects.filter(pk__in=ids), "seen")
    assert tagged.count() == 300 == first.saved["changed"]
    assert first.saved["after"] == ids[299]
    fill(collection, 50, source_hash="later")  # made after the job started: not swept in
    again = Reporter(user.pk, saved=first.saved)
    result = run(params, again)
    assert again.checkpoints == 7  # the rest, chunk by chunk, nothing done twice
    assert result["matched"] == result["changed"] == 1000 and result["skipped"] == 0
    assert selectors.memories_with_tag(Memory.objects.all(), "seen").count() == 1000
    assert again.steps[-1] == "1,000 of 1,000 memories"


def test_only_the_owner_s_memories_are_touched_whatever_ids_are_sent(user, other_user):
    mine = services.collection_create(owner=user, name="mine")
    theirs = services.collection_create(owner=other_user, name="theirs")
    my_ids = fill(mine, 5)
    their_ids = fill(theirs, 5)
    params = {"operation": "delete", "ids": [*my_ids[:3], *their_ids, 10**12]}
    result = run(params, Reporter(user.pk))
    assert result["changed"] == 3 and result["matched"] == 3
    assert result["failed"] == 6 and result["failed_reasons"] == {"not found": 6}
    assert result["failed_ids"] == sorted([*their_ids, 10**12])
    assert Memory.objects.filter(pk__in=their_ids).count() == 5
    assert list(Memory.objects.filter(collection=mine).values_list("id", flat=True)) == my_ids[3:]


def test_rows_with_their_own_new_values_are_written_each_in_one_statement(user):
    collection = services.collection_create(owner=user, name="c")
    ids = fill(collection, 40)
    for i, pk in enumerate(ids):  # each memory its own metadata: 40 distinct results
        Memory.objects.filter(pk=pk).update(metadata={"n": i})
    params = {
        "operation": "update",
        "ids": ids,
        "changes": {"metadata": {"seen": True}, "add_tags": ["x"]},
    }
    assert memory_ops.GROUPED_UPDATES < 40
    result = run(params, Reporter(user.pk))
    assert result["changed"] == 40 and result["chunks"] == 1
    for i, memory in enumerate(Memory.objects.filter(pk__in=ids).order_by("id")):
        assert memory.metadata == {"n": i, "seen": True} and memory.tags == ["x"]
