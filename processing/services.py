"""Every write to collections and memories."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.api.base import Conflict, InvalidInput
from processing.chunking import Chunk
from processing.models import Collection, Memory

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


def collection_delete(collection: Collection) -> None:
    """Delete a collection and its memories (the database cascades)."""
    collection.delete()


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
