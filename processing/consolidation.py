"""The ``memory_consolidation`` job: keep a collection useful as it grows old.

Two passes over one collection, each in transactions of a few hundred groups, with
progress and a cancel between them:

1. **Duplicates.** Exact duplicates (same content hash) and near-duplicates (MinHash over
   word 3-shingles, candidates from LSH, kept where the estimated Jaccard similarity
   reaches the threshold) form groups. Each group becomes one memory: the one pinned,
   else the most important, else the most read, else the oldest. It takes the highest
   importance, every tag, and a reference to every source it stands for (source, page,
   position, job); the others are archived and deleted.
2. **Summaries.** Memories older than the age setting, below the importance threshold,
   not pinned and not read in that time, are taken in runs of neighbouring chunks of one
   source (up to ``max_group``); each run of two or more becomes one memory holding an
   extractive summary (``processing.summaries``) and the originals are archived.

Nothing is lost: every memory removed is in a ``MemoryArchive`` (compressed JSON of its
row), and restoring one puts the rows back under their ids. Pinned and important
memories are never summarised, archived or deleted. A second run changes nothing more:
summaries are never summarised again, and a group that was merged is one memory.
"""

from __future__ import annotations

import json
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Func, IntegerField, Q, Sum
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field

from jobs.errors import JobError
from jobs.queues import Queue
from jobs.registry import register
from jobs.runtime import Progress
from processing import selectors, services, summaries
from processing.models import Collection, Memory, MemoryArchive

# 128 permutations, and LSH bands tuned for recall (a missed near-duplicate costs more than
# a false candidate, which the similarity estimate then rejects): at the default 0.85,
# pairs of 0.9 similarity become candidates 98% of the time, of 0.95 over 99.9%.
NUM_PERM = 128
LSH_WEIGHTS = (0.1, 0.9)  # (false positives, false negatives)
SHINGLE = 3
WRITE_GROUPS = 200
READ_BATCH = 2_000
# Fields of a memory the archive keeps (all of them) and restores.
ARCHIVED = (
    "id", "collection_id", "job_id", "source", "source_type", "source_hash", "chunk_index",
    "page", "position", "text", "content_hash", "metadata", "tags", "importance", "pinned",
    "access_count", "last_accessed_at", "created_at", "updated_at",
)  # fmt: skip


class ConsolidationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection_id: uuid.UUID
    similarity: float | None = Field(
        default=None,
        ge=0.5,
        le=1.0,
        description="Near-duplicates from this estimated Jaccard similarity of their word "
        "3-shingles; default JOBSITE_CONSOLIDATION_SIMILARITY (0.85).",
    )
    older_than_days: int | None = Field(
        default=None, ge=0, le=3650, description="Default JOBSITE_CONSOLIDATION_AGE_DAYS (30)."
    )
    importance_below: float | None = Field(
        default=None, ge=0, le=1, description="Default JOBSITE_CONSOLIDATION_IMPORTANCE (0.5)."
    )
    summary_ratio: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Share of sentences a summary keeps; default JOBSITE_CONSOLIDATION_RATIO.",
    )
    max_group: int = Field(default=10, ge=2, le=100, description="Chunks per summary at most.")
    dry_run: bool = False


@dataclass
class Options:
    similarity: float
    cutoff: Any
    importance_below: float
    ratio: float
    max_group: int
    dry_run: bool

    @classmethod
    def of(cls, params: ConsolidationParams) -> Options:
        days = _given(params.older_than_days, settings.JOBSITE_CONSOLIDATION_AGE_DAYS)
        return cls(
            similarity=_given(params.similarity, settings.JOBSITE_CONSOLIDATION_SIMILARITY),
            cutoff=timezone.now() - timedelta(days=days),
            importance_below=_given(
                params.importance_below, settings.JOBSITE_CONSOLIDATION_IMPORTANCE
            ),
            ratio=_given(params.summary_ratio, settings.JOBSITE_CONSOLIDATION_RATIO),
            max_group=params.max_group,
            dry_run=params.dry_run,
        )


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def check(owner: Any, params: dict[str, Any], has_file: bool) -> None:
    selectors.require_collection(owner, params["collection_id"])


@register(
    "memory_consolidation",
    params=ConsolidationParams,
    queue=Queue.DEFAULT,  # not maintenance: a long run must never hold up the sweeper
    check=check,
    max_retries=2,
    time_limit=4 * 3600,
    example={"collection_id": "3f1c…"},
)
def consolidate(params: ConsolidationParams, progress: Progress) -> dict[str, Any]:
    """Merge a collection's duplicates and summarise its old, unimportant memories."""
    started = time.monotonic()
    collection = Collection.objects.filter(
        pk=params.collection_id, deleting_since__isnull=True
    ).first()
    if collection is None:
        raise JobError("The collection was deleted before the job ran", code="collection_gone")
    options = Options.of(params)
    before = totals(collection)
    progress(1, "finding duplicates")
    groups = duplicate_groups(collection, options.similarity, progress)
    merged = 0 if options.dry_run else merge(collection, groups, progress)
    progress(50, "finding old memories to summarise")
    runs = summary_runs(collection, options)
    summarised = 0 if options.dry_run else summarise(collection, runs, options, progress)
    after = totals(collection)
    return {
        "collection_id": str(collection.pk),
        "dry_run": options.dry_run,
        "memories_before": before["memories"],
        "memories_after": after["memories"],
        "bytes_before": before["bytes"],
        "bytes_after": after["bytes"],
        "duplicate_groups": len(groups),
        "merged": merged if not options.dry_run else sum(len(g) - 1 for g in groups),
        "summaries": len(runs),
        "summarised": summarised if not options.dry_run else sum(len(r) for r in runs),
        "archived": merged + summarised,
        "archive_bytes": archive_bytes(collection),
        "seconds": round(time.monotonic() - started, 3),
    }


class OctetLength(Func):
    """A text's size in bytes (UTF-8), on both databases."""

    function = "OCTET_LENGTH"
    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="length(CAST(%(expressions)s AS BLOB))")


def totals(collection: Collection) -> dict[str, int]:
    found = Memory.objects.filter(collection=collection).aggregate(
        memories=Count("id"), bytes=Sum(OctetLength("text"))
    )
    return {"memories": found["memories"] or 0, "bytes": found["bytes"] or 0}


def archive_bytes(collection: Collection) -> int:
    found = MemoryArchive.objects.filter(collection=collection, restored_at__isnull=True)
    return found.aggregate(total=Sum("stored_bytes"))["total"] or 0


def start_scheduled() -> int:
    """The daily schedule: a system-owned consolidation job for every live collection that
    holds memories old enough to summarise or any new since its last run (duplicates), not
    twice for one collection. How many were started."""
    from jobs import schedules

    cutoff = timezone.now() - timedelta(days=settings.JOBSITE_CONSOLIDATION_AGE_DAYS)
    since = timezone.now() - timedelta(days=1)
    with_work = (
        Memory.objects.filter(collection__deleting_since__isnull=True)
        .filter(Q(created_at__lt=cutoff) | Q(created_at__gte=since))
        .values_list("collection_id", flat=True)
        .distinct()
    )
    started = 0
    for collection_id in with_work:
        params = {"collection_id": str(collection_id)}
        if schedules.start("memory_consolidation", params, same=params):
            started += 1
    return started


# --- duplicates -------------------------------------------------------------------------


def shingles(text: str) -> set[str]:
    words = text.lower().split()
    if len(words) < SHINGLE:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def _hash(shingle: str) -> int:
    # Python's own string hash: fast, and stable within the process, which is all a
    # MinHash built and compared in one job needs.
    return hash(shingle) & 0xFFFFFFFF


class _Groups:
    """Union-find over memory ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, item: int) -> int:
        root = item
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(item, item) != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: int, b: int) -> None:
        self.parent.setdefault(a, a)
        self.parent.setdefault(b, b)
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        found: dict[int, list[int]] = {}
        for item in self.parent:
            found.setdefault(self.find(item), []).append(item)
        return [sorted(ids) for ids in found.values() if len(ids) > 1]


def duplicate_groups(
    collection: Collection, threshold: float, progress: Progress
) -> list[list[int]]:
    """Ids of the collection's memories in groups of exact or near duplicates."""
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, weights=LSH_WEIGHTS)
    # One set of permutations for every memory (a MinHash draws its own otherwise), and
    # only the hash values kept per memory: 1 KB each.
    template = MinHash(num_perm=NUM_PERM, hashfunc=_hash)
    permutations, scheme = template.permutations, template.scheme
    hashes: dict[int, Any] = {}
    by_content: dict[str, int] = {}
    union = _Groups()
    rows = (
        Memory.objects.filter(collection=collection)
        .order_by("id")
        .values_list("id", "content_hash", "text")
    )
    total = max(1, Memory.objects.filter(collection=collection).count())
    for done, (pk, content, text) in enumerate(rows.iterator(chunk_size=READ_BATCH), start=1):
        first = by_content.setdefault(content, pk)
        if first != pk:
            union.union(first, pk)
            continue
        full = MinHash(num_perm=NUM_PERM, hashfunc=_hash, permutations=permutations, scheme=scheme)
        full.update_batch(list(shingles(text)))
        minhash = LeanMinHash(full)
        for other in lsh.query(minhash):
            if minhash.jaccard(hashes[other]) >= threshold:
                union.union(other, pk)
        lsh.insert(pk, minhash)
        hashes[pk] = minhash
        if done % READ_BATCH == 0:
            progress(1 + 24 * done / total, f"duplicates: {done:,} of {total:,} memories read")
    return union.groups()


def in_transactions(
    collection: Collection,
    groups: list[list[int]],
    write: Callable[[list[dict]], int],
    progress: Progress,
    span: tuple[float, float],
    what: str,
) -> int:
    """Each group's rows (read whole, for the archive) handed to ``write``, a few hundred
    groups per transaction, with progress over ``span`` and a cancel between them; the
    sum of what ``write`` returns."""
    done = 0
    low, high = span
    for start in range(0, len(groups), WRITE_GROUPS):
        progress.check()
        part = groups[start : start + WRITE_GROUPS]
        with transaction.atomic():
            rows = {
                row["id"]: row
                for row in Memory.objects.filter(
                    collection=collection, id__in=[i for g in part for i in g]
                ).values(*ARCHIVED)
            }
            for ids in part:
                done += write([rows[i] for i in ids if i in rows])
        finished = min(start + len(part), len(groups))
        progress(
            low + (high - low) * finished / len(groups), f"{what} {finished:,} of {len(groups):,}"
        )
    return done


def merge(collection: Collection, groups: list[list[int]], progress: Progress) -> int:
    """Each group into its keeper; the others archived and deleted. How many went."""

    def write(members: list[dict]) -> int:
        return _merge_group(collection, members, progress.job_id)

    return in_transactions(collection, groups, write, progress, (25, 50), "merged groups:")


def _merge_group(collection: Collection, members: list[dict], job_id: Any) -> int:
    """One group: the keeper absorbs the rest, which are archived. Several pinned memories
    all stay (a pin is a person's word that this one matters)."""
    if len(members) < 2:
        return 0
    members.sort(key=lambda m: (not m["pinned"], -m["importance"], -m["access_count"], m["id"]))
    keeper, rest = members[0], [m for m in members[1:] if not m["pinned"]]
    if not rest:
        return 0
    archive = _archive(collection, MemoryArchive.Kind.MERGE, rest, keeper["id"], job_id)
    references = list(keeper["metadata"].get("merged_from", []))
    references += [_reference(m, archive.pk) for m in rest]
    tags = list(dict.fromkeys([*keeper["tags"], *(t for m in rest for t in m["tags"])]))
    Memory.objects.filter(pk=keeper["id"]).update(
        importance=max(m["importance"] for m in members),
        tags=tags[: services.MAX_TAGS],
        access_count=sum(m["access_count"] for m in members),
        metadata={**keeper["metadata"], "merged_from": references},
        updated_at=timezone.now(),
    )
    Memory.objects.filter(pk__in=[m["id"] for m in rest]).delete()
    return len(rest)


def _reference(row: dict, archive_id: int) -> dict[str, Any]:
    return {
        "memory_id": row["id"],
        "source": row["source"],
        "page": row["page"],
        "position": row["position"],
        "job_id": str(row["job_id"]) if row["job_id"] else None,
        "archive_id": archive_id,
    }


# --- summaries --------------------------------------------------------------------------


def eligible(collection: Collection, options: Options) -> Any:
    """Old, unimportant, unpinned, unread memories that are not summaries already."""
    return (
        Memory.objects.filter(
            collection=collection,
            created_at__lt=options.cutoff,
            importance__lt=options.importance_below,
            pinned=False,
        )
        .filter(selectors.not_read_since(options.cutoff))
        .exclude(metadata__has_key="consolidated")
    )


def summary_runs(collection: Collection, options: Options) -> list[list[int]]:
    """Ids in runs of neighbouring chunks of one source: consecutive eligible chunks
    (no kept memory of that source between them), at most ``max_group`` long."""
    all_chunks = Memory.objects.filter(collection=collection).order_by("source_hash", "chunk_index")
    wanted = set(eligible(collection, options).values_list("id", flat=True))
    runs: list[list[int]] = []
    run: list[int] = []
    last_source = None
    for pk, source_hash in all_chunks.values_list("id", "source_hash").iterator(chunk_size=5000):
        if pk not in wanted or source_hash != last_source or len(run) == options.max_group:
            if len(run) > 1:
                runs.append(run)
            run = []
        if pk in wanted:
            run.append(pk)
        last_source = source_hash
    if len(run) > 1:
        runs.append(run)
    return runs


def summarise(
    collection: Collection, runs: list[list[int]], options: Options, progress: Progress
) -> int:
    """Each run into one summary memory; the originals archived. How many went."""

    def write(members: list[dict]) -> int:
        if len(members) < 2:  # the run changed since it was found
            return 0
        _summarise_run(collection, members, options, progress.job_id)
        return len(members)

    return in_transactions(collection, runs, write, progress, (50, 98), "summarised runs:")


def _summarise_run(collection: Collection, members: list[dict], options: Options, job_id: Any):
    first = members[0]
    text = summaries.summarise([m["text"] for m in members], options.ratio) or first["text"]
    Memory.objects.filter(pk__in=[m["id"] for m in members]).delete()
    summary = Memory.objects.create(
        collection=collection,
        job_id=first["job_id"],
        source=first["source"],
        source_type=first["source_type"],
        source_hash=first["source_hash"],
        chunk_index=first["chunk_index"],
        page=first["page"],
        position={"summary_of": [m["chunk_index"] for m in members], "first": first["position"]},
        text=text,
        content_hash=services.content_hash(text),
        metadata=first["metadata"],
        tags=list(dict.fromkeys(t for m in members for t in m["tags"]))[: services.MAX_TAGS],
        importance=max(m["importance"] for m in members),
        access_count=sum(m["access_count"] for m in members),
        created_at=first["created_at"],
    )
    archive = _archive(collection, MemoryArchive.Kind.SUMMARY, members, summary.pk, job_id)
    summary.metadata = {
        **first["metadata"],
        "consolidated": {
            "kind": "summary",
            "archive_id": archive.pk,
            "memories": len(members),
            "restore": f"/api/v1/memory-archives/{archive.pk}/restore/",
        },
    }
    summary.save(update_fields=["metadata"])


def _archive(
    collection: Collection, kind: str, rows: list[dict], replacement: int, job_id: Any
) -> MemoryArchive:
    kept = [{name: row[name] for name in ARCHIVED} for row in rows]
    payload = json.dumps(kept, ensure_ascii=False, default=_plain).encode()
    data = zlib.compress(payload, 6)
    return MemoryArchive.objects.create(
        collection=collection,
        kind=kind,
        replacement_id=replacement,
        data=data,
        count=len(rows),
        original_bytes=sum(len(row["text"].encode()) for row in rows),
        stored_bytes=len(data),
        job_id=job_id,
    )


def _plain(value: Any) -> str:
    """A row's UUIDs and times as JSON holds them (times to the microsecond)."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def archived_rows(archive: MemoryArchive) -> Iterator[dict]:
    """The archived memories' rows, as they were."""
    yield from json.loads(zlib.decompress(bytes(archive.data)))
