"""Every read of collections and memories, always through the owner."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from jobs.api.base import NotFound
from processing import search
from processing.models import Collection, Memory


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def collection_list(*, owner: Any) -> QuerySet[Collection]:
    return Collection.objects.filter(owner=owner)


def collection_get(*, owner: Any, collection_id: Any) -> Collection:
    """The caller's collection, or NotFound: another owner's does not exist for them."""
    pk = _uuid(collection_id)
    found = Collection.objects.filter(owner=owner, pk=pk).first() if pk else None
    if found is None:
        raise NotFound(f"Collection {collection_id} not found")
    return found


def memory_list(*, owner: Any) -> QuerySet[Memory]:
    return Memory.objects.filter(collection__owner=owner)


def memory_get(*, owner: Any, memory_id: Any) -> Memory:
    try:
        pk = int(memory_id)
    except (TypeError, ValueError):
        pk = None
    found = (
        Memory.objects.filter(collection__owner=owner, pk=pk).select_related("collection").first()
        if pk is not None and 0 < pk < 2**63
        else None
    )
    if found is None:
        raise NotFound(f"Memory {memory_id} not found")
    return found


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
