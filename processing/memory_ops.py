"""The ``batch_operation`` job: update or delete many memories at once.

Memories are chosen by ids (in the params, or up to ``MAX_IDS`` in an uploaded file) or by
a filter, and always among the job owner's own: an id of someone else's memory is counted
as failed ("not found"), exactly as one that does not exist. The work goes in chunks of
ids in ascending order, each chunk one transaction that also records the job's checkpoint
(the last id done and the counts so far): a cancel takes effect between chunks, and a
retried or restarted job continues after the last chunk that committed, so nothing is
done twice. A filter is frozen at the highest id that existed when the job first ran:
memories made later are not swept in by a restart.

The search index follows by itself: PostgreSQL's generated tsvector and SQLite's FTS5
triggers see every update and delete in the same transaction.
"""

from __future__ import annotations

import bisect
import json
import re
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from django.db import connection, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jobs.api.base import InvalidInput, JobError
from jobs.registry import register
from jobs.runtime import Progress
from processing import selectors, services
from processing.models import Collection, Memory

MAX_IDS = 100_000
# An id file is read whole: 100,000 ids are under 1.2 MB as text.
MAX_ID_FILE_BYTES = 4 * 1024 * 1024
DEFAULT_CHUNK = 5_000
FAILED_IDS_SHOWN = 100
_ID = re.compile(r"-?\d+")


class MemoryFilter(BaseModel):
    """Which of the owner's memories: all conditions hold (at least one is given)."""

    model_config = ConfigDict(extra="forbid")

    collection_id: uuid.UUID | None = None
    tag: str | None = Field(default=None, min_length=1, max_length=100)
    source: str | None = Field(default=None, min_length=1, max_length=1000)
    source_type: str | None = Field(default=None, min_length=1, max_length=20)
    job_id: uuid.UUID | None = Field(default=None, description="The job that made them.")
    created_after: datetime | None = None
    created_before: datetime | None = None
    importance_below: float | None = Field(default=None, ge=0, le=1)
    not_accessed_since: datetime | None = Field(
        default=None, description="Never read, or last read before this time."
    )
    pinned: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> MemoryFilter:
        if not self.model_dump(exclude_none=True):
            raise ValueError(
                "the filter needs at least one condition (collection_id, tag, source, ...)"
            )
        return self


class MemoryChanges(BaseModel):
    """What an update does to each memory chosen."""

    model_config = ConfigDict(extra="forbid")

    add_tags: list[str] = Field(default_factory=list, max_length=services.MAX_TAGS)
    remove_tags: list[str] = Field(default_factory=list, max_length=services.MAX_TAGS)
    set_tags: list[str] | None = Field(default=None, max_length=services.MAX_TAGS)
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Merged into each memory's metadata; a key set to null is removed.",
    )
    importance: float | None = Field(default=None, ge=0, le=1)
    pinned: bool | None = None
    collection_id: uuid.UUID | None = Field(
        default=None, description="Move them into this collection (yours)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> MemoryChanges:
        if self.set_tags is not None and (self.add_tags or self.remove_tags):
            raise ValueError("set_tags replaces the tags: not with add_tags or remove_tags")
        if not self.model_dump(exclude_defaults=True):
            raise ValueError("changes must change something")
        for name in ("add_tags", "remove_tags", "set_tags"):
            value = getattr(self, name)
            if value is not None:
                try:
                    setattr(self, name, services.clean_tags(value))
                except InvalidInput as exc:
                    raise ValueError(exc.message) from None
        return self


class BatchOperationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: Literal["update", "delete"]
    ids: list[int] | None = Field(
        default=None,
        description="Memory ids (more than fit in params: upload them as `file`, a JSON "
        f"array or whitespace-separated, up to {MAX_IDS:,}).",
    )
    filter: MemoryFilter | None = None
    changes: MemoryChanges | None = Field(default=None, description="For operation=update.")
    dry_run: bool = Field(
        default=False, description="Count and show a sample of what would change; change nothing."
    )
    sample_size: int = Field(default=20, ge=0, le=100, description="Of a dry run.")
    chunk_size: int = Field(default=DEFAULT_CHUNK, ge=100, le=5_000)
    delete_collection: bool = Field(
        default=False,
        description="With operation=delete and filter.collection_id only: delete the "
        "collection too, once its memories are gone.",
    )

    @field_validator("ids")
    @classmethod
    def _ids(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(value) > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS:,} ids")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BatchOperationParams:
        if self.operation == "update" and self.changes is None:
            raise ValueError("operation=update needs changes")
        if self.operation == "delete" and self.changes is not None:
            raise ValueError("operation=delete takes no changes")
        if self.ids is not None and self.filter is not None:
            raise ValueError("choose memories by ids or by filter, not both")
        if self.delete_collection:
            alone = self.filter is not None and self.filter.model_dump(
                exclude_none=True
            ).keys() == {"collection_id"}
            if self.operation != "delete" or not alone:
                raise ValueError(
                    "delete_collection goes with operation=delete and a filter of "
                    "collection_id alone"
                )
        return self


def check(owner: Any, params: dict[str, Any], has_file: bool) -> None:
    """At create time: one way of choosing, and collections the caller owns."""
    chosen = [has_file, params.get("ids") is not None, params.get("filter") is not None]
    if sum(chosen) != 1:
        raise InvalidInput(
            "Choose the memories one way: ids, an uploaded file of ids, or a filter",
            details={"ids": ["give ids, a file of ids, or a filter"]},
        )
    named = {
        "filter.collection_id": (params.get("filter") or {}).get("collection_id"),
        "changes.collection_id": (params.get("changes") or {}).get("collection_id"),
    }
    for field, collection_id in named.items():
        if collection_id:
            deleting = field == "filter.collection_id" and bool(params.get("delete_collection"))
            selectors.require_collection(owner, collection_id, field=field, deleting=deleting)


@register(
    "batch_operation",
    params=BatchOperationParams,
    accepts_file=True,
    check=check,
    max_retries=3,
    time_limit=3600,
    example={
        "operation": "update",
        "filter": {"collection_id": "3f1c…", "tag": "draft"},
        "changes": {"remove_tags": ["draft"], "add_tags": ["reviewed"]},
    },
)
def batch_operation(params: BatchOperationParams, progress: Progress) -> dict[str, Any]:
    """Update or delete the owner's memories chosen by ids or a filter, chunk by chunk."""
    started = time.monotonic()
    owner_id = progress.owner_id
    if params.delete_collection:
        assert params.filter is not None and params.filter.collection_id is not None
        Collection.objects.filter(
            pk=params.filter.collection_id, owner_id=owner_id, deleting_since__isnull=True
        ).update(deleting_since=timezone.now())
    requested = _requested_ids(params, progress)
    target = _target_collection(params, owner_id)
    state = progress.resume() or _start(params, owner_id, requested)
    run = _Run(params, owner_id, requested, state, target)
    if params.dry_run:
        return {**run.dry(progress), "seconds": round(time.monotonic() - started, 3)}
    while True:
        candidates, rows = run.next_chunk()
        if not candidates:
            break
        with transaction.atomic():
            run.apply(candidates, rows)
            progress.checkpoint(run.state)  # last in the transaction: it locks the job row
        progress(run.percent(), run.step())
    collection_deleted = False
    if params.delete_collection:
        assert params.filter is not None
        deleted, _ = Collection.objects.filter(
            pk=params.filter.collection_id, owner_id=owner_id
        ).delete()
        collection_deleted = bool(deleted)
    return {
        **run.result(),
        "collection_deleted": collection_deleted,
        "seconds": round(time.monotonic() - started, 3),
    }


def _requested_ids(params: BatchOperationParams, progress: Progress) -> list[int] | None:
    """The ids asked for, sorted and unique; None when a filter chooses."""
    if params.ids is not None:
        return sorted(set(params.ids))
    if progress.input_path:
        return sorted(set(read_id_file(Path(progress.input_path))))
    return None


def read_id_file(path: Path) -> list[int]:
    """Ids from an uploaded file: a JSON array of integers, or integers separated by
    whitespace or commas. Anything else fails the job, saying where."""
    size = path.stat().st_size
    if size > MAX_ID_FILE_BYTES:
        raise JobError(
            f"The id file is {size:,} bytes; at most {MAX_ID_FILE_BYTES:,}", code="ids_invalid"
        )
    text = path.read_bytes().decode("utf-8", errors="replace").strip()
    if text[:1] in ("[", "{"):  # JSON (an object is refused below, by name)
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise JobError(f"The id file is not valid JSON: {exc}", code="ids_invalid") from None
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise JobError("The id file's JSON must be an array of integers", code="ids_invalid")
        ids = value
    else:
        tokens = [t for t in re.split(r"[\s,]+", text) if t]
        bad = next((t for t in tokens if not _ID.fullmatch(t)), None)
        if bad is not None:
            raise JobError(
                f"The id file holds {bad[:30]!r}, which is not a memory id", code="ids_invalid"
            )
        ids = [int(t) for t in tokens]
    if len(ids) > MAX_IDS:
        raise JobError(
            f"The id file holds {len(ids):,} ids; at most {MAX_IDS:,}", code="ids_invalid"
        )
    return ids


def _target_collection(params: BatchOperationParams, owner_id: Any) -> Collection | None:
    target_id = params.changes.collection_id if params.changes else None
    if target_id is None:
        return None
    target = Collection.objects.filter(
        pk=target_id, owner_id=owner_id, deleting_since__isnull=True
    ).first()
    if target is None:
        raise JobError(
            f"Collection {target_id} is gone: the memories cannot move there",
            code="collection_gone",
        )
    return target


# The filter's plain conditions, as ORM lookups (tag and not_accessed_since take more).
FILTER_LOOKUPS = {
    "collection_id": "collection_id",
    "source": "source",
    "source_type": "source_type",
    "job_id": "job_id",
    "created_after": "created_at__gte",
    "created_before": "created_at__lt",
    "importance_below": "importance__lt",
    "pinned": "pinned",
}


def owned(owner_id: Any) -> QuerySet[Memory]:
    return Memory.objects.filter(collection__owner_id=owner_id)


def filtered(owner_id: Any, chosen: MemoryFilter) -> QuerySet[Memory]:
    """The owner's memories matching every condition of the filter."""
    given = chosen.model_dump(exclude_none=True)
    query = owned(owner_id).filter(
        **{FILTER_LOOKUPS[k]: v for k, v in given.items() if k in FILTER_LOOKUPS}
    )
    if chosen.tag is not None:
        query = selectors.memories_with_tag(query, chosen.tag)
    if chosen.not_accessed_since is not None:
        query = query.filter(selectors.not_read_since(chosen.not_accessed_since))
    return query


def _start(params: BatchOperationParams, owner_id: Any, requested: list[int] | None) -> dict:
    """The first attempt's state: the frozen upper id and the total, zero counts."""
    if requested is not None:
        upto, total = (requested[-1] if requested else 0), len(requested)
    else:
        assert params.filter is not None
        upto = Memory.objects.aggregate(top=Max("id"))["top"] or 0
        total = filtered(owner_id, params.filter).filter(id__lte=upto).count()
    return {
        "after": 0,
        "upto": upto,
        "total": total,
        "seen": 0,
        "matched": 0,
        "changed": 0,
        "skipped": 0,
        "failed": 0,
        "failed_ids": [],
        "failed_reasons": {},
        "chunks": 0,
    }


class _Run:
    """One job's pass over its memories: the next chunk, and what it does to it."""

    def __init__(
        self,
        params: BatchOperationParams,
        owner_id: Any,
        requested: list[int] | None,
        state: dict[str, Any],
        target: Collection | None,
    ) -> None:
        self.params = params
        self.owner_id = owner_id
        self.requested = requested
        self.state = state
        self.target = target

    def columns(self) -> tuple[str, ...]:
        """What a chunk reads of each memory: its id for a delete; for an update the
        fields it may change (and the unique key, for a move)."""
        if self.params.operation == "delete":
            return ("id",)
        key = ("source_hash", "chunk_index") if self.target else ()
        return ("id", "tags", "metadata", "importance", "pinned", "collection_id", *key)

    def next_chunk(self) -> tuple[list[int], list[dict[str, Any]]]:
        """The next chunk after the checkpoint: the ids it covers (requested ones, or
        matching ones) and the owner's memories among them, in one query."""
        after, size = self.state["after"], self.params.chunk_size
        if self.requested is not None:
            start = bisect.bisect_right(self.requested, after)
            candidates = self.requested[start : start + size]
            if not candidates:
                return [], []
            rows = owned(self.owner_id).filter(id__in=candidates).values(*self.columns())
            return candidates, list(rows)
        assert self.params.filter is not None
        rows = list(
            filtered(self.owner_id, self.params.filter)
            .filter(id__gt=after, id__lte=self.state["upto"])
            .order_by("id")
            .values(*self.columns())[:size]
        )
        return [row["id"] for row in rows], rows

    def plan(
        self, candidates: list[int], rows: list[dict[str, Any]]
    ) -> tuple[list[dict], dict[int, str], int]:
        """For a chunk: the rows to write (with their new values), the ids that fail and
        why, and how many matched but need no change."""
        found = {row["id"] for row in rows}
        failed = {i: "not found" for i in candidates if i not in found}
        if self.params.operation == "delete":
            return rows, failed, 0
        assert self.params.changes is not None
        changes = self.params.changes
        conflicts = self._move_conflicts(rows) if self.target else set()
        writes, skipped = [], 0
        for row in rows:
            new = changed_values(row, changes)
            if row["id"] in conflicts:
                failed[row["id"]] = "the target collection already holds this chunk"
                continue
            if new:
                writes.append({**row, **new, "_before": row, "_new": new})
            else:
                skipped += 1
        return writes, failed, skipped

    def _move_conflicts(self, rows: list[dict]) -> set[int]:
        """Rows whose (source, chunk) the target collection already holds: the unique
        key forbids a second copy, so they stay where they are."""
        assert self.target is not None
        moving = [r for r in rows if r["collection_id"] != self.target.pk]
        taken = selectors.places_taken(self.target.pk, moving)
        return {r["id"] for r in moving if (r["source_hash"], r["chunk_index"]) in taken}

    def apply(self, candidates: list[int], rows: list[dict[str, Any]]) -> None:
        writes, failed, skipped = self.plan(candidates, rows)
        if self.params.operation == "delete":
            Memory.objects.filter(id__in=[row["id"] for row in writes]).delete()
        else:
            write_rows(writes)
        self._count(candidates, writes, failed, skipped)

    def _count(self, candidates: list[int], writes: list, failed: dict[int, str], skipped: int):
        state = self.state
        state["after"] = candidates[-1]
        state["seen"] += len(candidates)
        state["matched"] += len(candidates) - sum(r == "not found" for r in failed.values())
        state["changed"] += len(writes)
        state["skipped"] += skipped
        state["failed"] += len(failed)
        room = FAILED_IDS_SHOWN - len(state["failed_ids"])
        state["failed_ids"] += sorted(failed)[: max(0, room)]
        reasons = Counter(state["failed_reasons"]) + Counter(failed.values())
        state["failed_reasons"] = dict(reasons)
        state["chunks"] += 1

    def dry(self, progress: Progress) -> dict[str, Any]:
        """Every chunk planned, none written: the counts and a sample."""
        sample: list[dict[str, Any]] = []
        while True:
            candidates, rows = self.next_chunk()
            if not candidates:
                break
            writes, failed, skipped = self.plan(candidates, rows)
            room = max(0, self.params.sample_size - len(sample))
            sample += _samples(writes[:room], self.params.operation)
            self._count(candidates, writes, failed, skipped)
            progress(self.percent(), self.step())
        return {**self.result(), "sample": sample}

    def percent(self) -> float:
        return min(99.0, 100 * self.state["seen"] / max(1, self.state["total"]))

    def step(self) -> str:
        return f"{self.state['seen']:,} of {self.state['total']:,} memories"

    def result(self) -> dict[str, Any]:
        state = self.state
        return {
            "operation": self.params.operation,
            "dry_run": self.params.dry_run,
            "requested": len(self.requested) if self.requested is not None else None,
            "matched": state["matched"],
            "changed": state["changed"],
            "skipped": state["skipped"],
            "failed": state["failed"],
            "failed_ids": state["failed_ids"],
            "failed_reasons": state["failed_reasons"],
            "chunks": state["chunks"],
        }


def changed_values(row: dict[str, Any], changes: MemoryChanges) -> dict[str, Any]:
    """The fields an update changes in one memory, with their new values ({} for none)."""
    new: dict[str, Any] = {}
    if changes.set_tags is not None:
        tags = list(changes.set_tags)
    else:
        removed = set(changes.remove_tags)
        tags = [t for t in row["tags"] if t not in removed]
        tags += [t for t in changes.add_tags if t not in tags and t not in removed]
    if tags != row["tags"]:
        if len(tags) > services.MAX_TAGS:
            tags = tags[: services.MAX_TAGS]
        new["tags"] = tags
    if changes.metadata is not None:
        merged = {**row["metadata"], **changes.metadata}
        merged = {k: v for k, v in merged.items() if v is not None}
        if merged != row["metadata"]:
            new["metadata"] = merged
    for name in ("importance", "pinned"):
        value = getattr(changes, name)
        if value is not None and value != row[name]:
            new[name] = value
    if changes.collection_id is not None and changes.collection_id != row["collection_id"]:
        new["collection_id"] = changes.collection_id
    return new


# A chunk whose rows share at most this many distinct sets of new values is written one
# UPDATE per set; else every row's values go in one statement (``write_each``).
GROUPED_UPDATES = 32


def write_rows(rows: list[dict[str, Any]]) -> None:
    """Write a chunk's new values. Most updates give many memories the same new values
    (the same tags added to the same tags): one ``UPDATE ... WHERE id IN (...)`` per
    distinct set of them writes only the fields that change, as fast as a plain UPDATE
    (measured on 100,000 memories: 9.9 s per-row values, see docs/benchmarks.md)."""
    if not rows:
        return
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = json.dumps({k: _json(v) for k, v in row["_new"].items()}, sort_keys=True)
        groups.setdefault(key, []).append(row)
    if len(groups) > GROUPED_UPDATES:
        write_each(rows)
        return
    now = timezone.now()
    for members in groups.values():
        Memory.objects.filter(id__in=[row["id"] for row in members]).update(
            **members[0]["_new"], updated_at=now
        )


def write_each(rows: list[dict[str, Any]]) -> None:
    """Each row's new values in one statement per chunk: ``UPDATE ... FROM (VALUES ...)``
    on PostgreSQL, one prepared statement run for every row on SQLite (in process, as
    fast). Unchanged fields are written back as they were."""
    now = timezone.now()
    table = Memory._meta.db_table
    values = [
        (
            row["id"],
            json.dumps(row["tags"]),
            json.dumps(row["metadata"]),
            float(row["importance"]),
            bool(row["pinned"]),
            str(row["collection_id"]),
        )
        for row in rows
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for start in range(0, len(values), 2_000):  # under PostgreSQL's 65,535 parameters
                part = values[start : start + 2_000]
                placeholders = ", ".join(
                    ["(%s, %s::jsonb, %s::jsonb, %s, %s, %s::uuid)"] * len(part)
                )
                cursor.execute(
                    f"UPDATE {table} AS m SET tags = v.tags, metadata = v.metadata, "  # noqa: S608 - names are ours
                    "importance = v.importance, pinned = v.pinned, "
                    "collection_id = v.collection_id, updated_at = %s "
                    f"FROM (VALUES {placeholders}) AS v(id, tags, metadata, importance, pinned, "
                    "collection_id) WHERE m.id = v.id",
                    [now, *(x for row in part for x in row)],
                )
        else:
            cursor.executemany(
                f"UPDATE {table} SET tags = %s, metadata = %s, importance = %s, pinned = %s, "  # noqa: S608
                "collection_id = %s, updated_at = %s WHERE id = %s",
                [
                    (tags, metadata, importance, pinned, collection.replace("-", ""), now, pk)
                    for pk, tags, metadata, importance, pinned, collection in values
                ],
            )


def _samples(rows: list[dict[str, Any]], operation: str) -> list[dict[str, Any]]:
    """A dry run's view of some rows: a delete's source and text (read for these only), an
    update's values before and after."""
    if operation == "delete":
        shown = Memory.objects.filter(id__in=[row["id"] for row in rows]).order_by("id")
        return [
            {"id": pk, "source": source, "text": text[:200]}
            for pk, source, text in shown.values_list("id", "source", "text")
        ]
    return [
        {
            "id": row["id"],
            "before": {k: _json(row["_before"][k]) for k in row["_new"]},
            "after": {k: _json(v) for k, v in row["_new"].items()},
        }
        for row in rows
    ]


def _json(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value
