"""What pipelines write: collections of searchable memories, and the echo job's ledger."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Collection(models.Model):
    """A named, owned set of memories: what a search looks in."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collections"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # Target characters per memory and the overlap carried into the next one.
    chunk_size = models.PositiveIntegerField(default=1200)
    chunk_overlap = models.PositiveIntegerField(default=150)
    # Set when a delete was accepted and its job is removing the memories: the collection
    # is gone for its owner (lists, reads, search, new jobs) from that moment.
    deleting_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="collection_owner_name"),
        ]
        indexes = [models.Index(fields=["owner", "-created_at"], name="collection_owner_created")]

    def __str__(self) -> str:
        return self.name


class Memory(models.Model):
    """One chunk of a source, where it sits in it, and what people made of it since.

    ``job_id`` is a plain UUID, not a foreign key: memories outlive the purge of the job
    records that produced them. The search index lives beside the table (a generated
    tsvector with a GIN index on PostgreSQL, an FTS5 table on SQLite; see
    ``processing.search``), created by this app's migrations.
    """

    id = models.BigAutoField(primary_key=True)
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="memories")
    job_id = models.UUIDField(null=True, blank=True)
    source = models.CharField(max_length=1000, help_text="File name or URL.")
    source_type = models.CharField(max_length=20, blank=True, default="")
    # sha256 of the source's bytes: re-processing the same file replaces, never duplicates.
    source_hash = models.CharField(max_length=64, blank=True, default="")
    chunk_index = models.PositiveIntegerField(default=0)
    # First page/slide/sheet/section number, for filtering and citing; details in position.
    page = models.PositiveIntegerField(null=True, blank=True)
    position = models.JSONField(default=dict, blank=True)
    text = models.TextField()
    content_hash = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    importance = models.FloatField(default=0.5)
    # Pinned memories are never consolidated, summarised or archived.
    pinned = models.BooleanField(default=False)
    access_count = models.PositiveIntegerField(default=0)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "source_hash", "chunk_index"],
                name="memory_source_chunk",
            ),
        ]
        indexes = [
            models.Index(fields=["collection", "-created_at"], name="memory_collection_created"),
            models.Index(fields=["job_id"], name="memory_job"),
        ]

    def __str__(self) -> str:
        return f"{self.source} #{self.chunk_index}"


class MemoryArchive(models.Model):
    """Memories that consolidation replaced, kept compressed so nothing is lost: the
    originals of a summary, or the near-duplicates merged into one memory. Restoring puts
    them back under their own ids (``services.memory_archive_restore``)."""

    class Kind(models.TextChoices):
        SUMMARY = "summary"
        MERGE = "merge"

    id = models.BigAutoField(primary_key=True)
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="archives")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # The memory that stands for them now: the summary, or the duplicate that was kept.
    # A plain id, not a foreign key: a memory is deleted in bulk (one statement for
    # thousands) only while nothing refers to it.
    replacement_id = models.BigIntegerField(null=True, blank=True)
    # The original rows as zlib-compressed JSON (every field, ids included).
    data = models.BinaryField()
    count = models.PositiveIntegerField()
    original_bytes = models.PositiveBigIntegerField(help_text="Their texts, as UTF-8.")
    stored_bytes = models.PositiveBigIntegerField(help_text="The compressed archive.")
    job_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    restored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["collection", "-created_at"], name="archive_collection_created")
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.count} memories"


class EchoWrite(models.Model):
    """One row per echo attempt that wrote its payload: the fault-injection suite counts
    them to prove no job's effects ran twice. Not a foreign key: the ledger outlives the
    purge of the jobs it counts."""

    job_id = models.UUIDField(db_index=True)
    attempt = models.PositiveIntegerField()
    payload = models.JSONField(null=True, blank=True)
    written_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"echo {self.job_id} attempt {self.attempt}"
