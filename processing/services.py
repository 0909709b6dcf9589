"""Every write to collections and memories."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.api.base import Conflict, InvalidInput
from processing.chunking import Chunk
from processing.models import Collection, Memory, MemoryArchive

MAX_TAGS = 50
MAX_TAG_LENGTH = 100
STORE_BATCH = 500


def collection_create(
    *,
    owner: Any,
    name: str,
    description: str = "",
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
) -> Collection:
    collection = Collection(owner=owner, name=name, description=description)
    if chunk_size is not None:
        collection.chunk_size = chunk_size
    if chunk_overlap is not None:
        collection.chunk_overlap = chunk_overlap
    _check_chunking(collection)
    try:
        with transaction.atomic():
            collection.save()
    except IntegrityError:
        raise Conflict(
            f"You already have a collection named '{name}'", details={"name": ["already used"]}
        ) from None
    return collection


def collection_update(collection: Collection, **changes: Any) -> Collection:
    for name, value in changes.items():
        setattr(collection, name, value)
    _check_chunking(collection)
    collection.updated_at = timezone.now()
    try:
        with transaction.atomic():
            collection.save()
    except IntegrityError:
        raise Conflict(
            f"You already have a collection named '{collection.name}'",
            details={"name": ["already used"]},
        ) from None
    return collection


def collection_delete(collection: Collection, *, actor: str) -> Any:
    """Delete a collection and its memories. A small one goes at once (the database
    cascades) and None is returned; one with more than ``JOBSITE_COLLECTION_DELETE_INLINE``
    memories is marked as being deleted (gone for its owner from now on) and a
    ``batch_operation`` job deletes its memories in chunks, then the collection: the
    returned job. A delete inside the request would hold locks on every row for as long
    as it takes, and time out on a million memories."""
    from jobs import services as jobs_services

    limit = settings.JOBSITE_COLLECTION_DELETE_INLINE
    if collection.memories.all()[: limit + 1].count() <= limit:
        collection.delete()
        return None
    with transaction.atomic():
        Collection.objects.filter(pk=collection.pk).update(deleting_since=timezone.now())
        job, _ = jobs_services.job_create(
            owner=collection.owner,
            job_type="batch_operation",
            params={
                "operation": "delete",
                "filter": {"collection_id": str(collection.pk)},
                "delete_collection": True,
            },
            actor=actor,
        )
    return job


def _check_chunking(collection: Collection) -> None:
    if collection.chunk_overlap * 2 > collection.chunk_size:
        raise InvalidInput(
            "chunk_overlap must be at most half of chunk_size",
            details={"chunk_overlap": [f"at most {collection.chunk_size // 2}"]},
        )


def clean_tags(tags: Iterable[Any]) -> list[str]:
    """Tags as stored: trimmed, unique, in the order given."""
    result: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidInput("Tags must be non-empty strings", details={"tags": ["bad tag"]})
        tag = tag.strip()
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidInput(
                f"Tags are at most {MAX_TAG_LENGTH} characters", details={"tags": ["too long"]}
            )
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise InvalidInput(f"At most {MAX_TAGS} tags", details={"tags": ["too many"]})
    return result


def memory_update(
    memory: Memory,
    *,
    tags: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    importance: float | None = None,
    pinned: bool | None = None,
) -> Memory:
    fields = ["updated_at"]
    if tags is not None:
        memory.tags = clean_tags(tags)
        fields.append("tags")
    if metadata is not None:
        memory.metadata = metadata
        fields.append("metadata")
    if importance is not None:
        memory.importance = importance
        fields.append("importance")
    if pinned is not None:
        memory.pinned = pinned
        fields.append("pinned")
    memory.updated_at = timezone.now()
    memory.save(update_fields=fields)
    return memory


def memory_delete(memory: Memory) -> None:
    memory.delete()


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    created: int
    updated: int
    removed: int


def memories_store(
    *,
    collection_id: Any,
    job_id: Any,
    source: str,
    source_type: str,
    source_hash: str,
    chunks: Sequence[Chunk],
    tags: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
) -> Stored:
    """Write a source's chunks into a collection, replacing what an earlier run of the same
    source wrote there (keyed by source hash and chunk index): processing a file twice
    never duplicates memories, and keeps the tags, importance and access counts people
    gave the memories that are still there."""
    now = timezone.now()
    clean = clean_tags(tags)
    rows = [
        Memory(
            collection_id=collection_id,
            job_id=job_id,
            source=source[:1000],
            source_type=source_type,
            source_hash=source_hash,
            chunk_index=index,
            page=chunk.unit,
            position=chunk.position(),
            text=chunk.text,
            content_hash=content_hash(chunk.text),
            metadata=metadata or {},
            tags=clean,
            created_at=now,
            updated_at=now,
        )
        for index, chunk in enumerate(chunks)
    ]
    same_source = Memory.objects.filter(collection_id=collection_id, source_hash=source_hash)
    with transaction.atomic():
        existing = same_source.filter(chunk_index__lt=len(rows)).count()
        removed, _ = same_source.filter(chunk_index__gte=len(rows)).delete()
        for start in range(0, len(rows), STORE_BATCH):
            Memory.objects.bulk_create(
                rows[start : start + STORE_BATCH],
                update_conflicts=True,
                unique_fields=["collection", "source_hash", "chunk_index"],
                update_fields=[
                    "job_id",
                    "source",
                    "source_type",
                    "page",
                    "position",
                    "text",
                    "content_hash",
                    "updated_at",
                ],
            )
    return Stored(created=len(rows) - existing, updated=existing, removed=removed)


def memory_archive_restore(archive: MemoryArchive) -> int:
    """Put an archive's memories back, under their own ids, and remove what replaced
    them: a summary is deleted; a kept duplicate loses its references to them. Refused
    (409) when restored already, or when the collection now holds a memory at one of
    their places (the same chunk of the same source, processed again since)."""
    from processing import selectors
    from processing.consolidation import archived_rows

    with transaction.atomic():
        locked = MemoryArchive.objects.select_for_update().get(pk=archive.pk)
        if locked.restored_at is not None:
            raise Conflict(f"Archive {archive.pk} was restored already", code="archive_restored")
        rows = list(archived_rows(locked))
        ids = [row["id"] for row in rows]
        if locked.kind == MemoryArchive.Kind.SUMMARY and locked.replacement_id:
            Memory.objects.filter(pk=locked.replacement_id).delete()
        elif locked.replacement_id:
            keeper = Memory.objects.filter(pk=locked.replacement_id).first()
            if keeper is not None:
                kept = [
                    ref
                    for ref in keeper.metadata.get("merged_from", [])
                    if ref.get("memory_id") not in ids
                ]
                keeper.metadata = {**keeper.metadata, "merged_from": kept}
                if not kept:
                    keeper.metadata.pop("merged_from")
                keeper.save(update_fields=["metadata"])
        clash = selectors.places_taken(locked.collection_id, rows)
        if clash:
            raise Conflict(
                f"The collection holds other memories at {len(clash)} of the archived "
                "memories' places (their source was processed again): nothing was restored",
                code="archive_conflict",
            )
        Memory.objects.bulk_create(
            [Memory(**{**row, "collection_id": locked.collection_id}) for row in rows],
            batch_size=STORE_BATCH,
        )
        locked.restored_at = timezone.now()
        locked.save(update_fields=["restored_at"])
    return len(rows)
