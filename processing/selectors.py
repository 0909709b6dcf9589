"""Every read of collections and memories, always through the owner."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from jobs.api.base import InvalidInput, NotFound
from processing import search
from processing.models import Collection, Memory, MemoryArchive


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def _row_id(value: Any) -> int | None:
    """A path's id of a bigint row, or None for anything that cannot be one."""
    try:
        pk = int(value)
    except (TypeError, ValueError):
        return None
    return pk if 0 < pk < 2**63 else None


def collection_list(*, owner: Any) -> QuerySet[Collection]:
    """The owner's collections; one whose delete was accepted is gone already."""
    return Collection.objects.filter(owner=owner, deleting_since__isnull=True)


def collection_get(*, owner: Any, collection_id: Any) -> Collection:
    """The caller's collection, or NotFound: another owner's does not exist for them."""
    pk = _uuid(collection_id)
    found = collection_list(owner=owner).filter(pk=pk).first() if pk else None
    if found is None:
        raise NotFound(f"Collection {collection_id} not found")
    return found


def require_collection(
    owner: Any, collection_id: Any, *, field: str = "collection_id", deleting: bool = False
) -> None:
    """At a job's create time: a collection the caller owns (any live one for the
    system's own jobs, which have no owner), else a 400 naming ``field``. ``deleting``
    also admits one whose delete was accepted (the job that deletes it)."""
    found = Collection.objects.all() if owner is None else Collection.objects.filter(owner=owner)
    if not deleting:
        found = found.filter(deleting_since__isnull=True)
    if not found.filter(pk=_uuid(collection_id)).exists():
        raise InvalidInput(
            f"Collection {collection_id} not found",
            details={field: ["no such collection of yours"]},
        )


def memory_list(*, owner: Any) -> QuerySet[Memory]:
    return Memory.objects.filter(collection__owner=owner, collection__deleting_since__isnull=True)


def memory_get(*, owner: Any, memory_id: Any) -> Memory:
    pk = _row_id(memory_id)
    found = (
        memory_list(owner=owner).filter(pk=pk).select_related("collection").first()
        if pk is not None
        else None
    )
    if found is None:
        raise NotFound(f"Memory {memory_id} not found")
    return found


def archive_list(*, owner: Any, collection_id: Any = None) -> QuerySet[MemoryArchive]:
    archives = MemoryArchive.objects.filter(
        collection__owner=owner, collection__deleting_since__isnull=True
    )
    if collection_id:
        archives = archives.filter(
            collection=collection_get(owner=owner, collection_id=collection_id)
        )
    return archives.defer("data")


def archive_get(*, owner: Any, archive_id: Any) -> MemoryArchive:
    pk = _row_id(archive_id)
    found = archive_list(owner=owner).filter(pk=pk).first() if pk is not None else None
    if found is None:
        raise NotFound(f"Archive {archive_id} not found")
    return found


def not_read_since(when: Any) -> Q:
    """Memories never read, or last read before ``when``."""
    return Q(last_accessed_at__isnull=True) | Q(last_accessed_at__lt=when)


def places_taken(collection_id: Any, rows: Iterable[dict[str, Any]]) -> set[tuple[str, int]]:
    """Which of the rows' places (source hash, chunk index: the unique key) a collection
    already holds a memory at."""
    wanted = {(row["source_hash"], row["chunk_index"]) for row in rows}
    held = Memory.objects.filter(
        collection_id=collection_id, source_hash__in={place[0] for place in wanted}
    ).values_list("source_hash", "chunk_index")
    return wanted & set(held)


def memories_with_tag(queryset: QuerySet[Memory], tag: str) -> QuerySet[Memory]:
    """Memories carrying a tag, through the search module's per-database condition."""
    table = Memory._meta.db_table
    condition = search.tag_condition(table)  # a constant per database; the tag is a parameter
    return queryset.extra(where=[condition], params=[search.tag_param(tag)])  # noqa: S610


@dataclass
class SearchResult:
    hits: list[search.Hit]
    took_ms: float


def memory_search(
    *,
    owner: Any,
    q: str,
    collection_id: Any = None,
    job_id: Any = None,
    tag: str | None = None,
    limit: int = 10,
    offset: int = 0,
) -> SearchResult:
    """Ranked hits in the owner's collections (one, or all of them)."""
    started = time.perf_counter()
    query = search.parse(q)
    if collection_id is not None:
        collection_ids = [collection_get(owner=owner, collection_id=collection_id).pk]
    else:
        collection_ids = list(collection_list(owner=owner).values_list("pk", flat=True))
    hits = search.search(
        query,
        collection_ids=collection_ids,
        job_id=job_id,
        tag=tag,
        limit=limit,
        offset=offset,
    )
    return SearchResult(hits=hits, took_ms=(time.perf_counter() - started) * 1000)
