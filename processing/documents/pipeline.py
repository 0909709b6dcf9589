"""The ``document_processing`` job: a file (uploaded, or fetched from ``file_url``) into
searchable memories in a collection.

Reads the document page by page (progress and cancel between pages), chunks each page
along its structure, and stores all chunks in one transaction at the end, so a cancelled
or failed job leaves nothing half-written and a re-run of the same file replaces its
memories instead of adding to them.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from jobs.api.base import InvalidInput, JobError
from jobs.queues import Queue
from jobs.registry import register
from jobs.runtime import Progress
from processing import chunking, selectors, services
from processing.documents.base import Document, Limits
from processing.inputs import file_sha256, input_file
from processing.models import Collection


class DocumentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection_id: uuid.UUID = Field(description="The collection the memories go into.")
    file_url: HttpUrl | None = Field(
        default=None, description="Fetch the document from here (or upload it as `file`)."
    )
    filename: str | None = Field(
        default=None,
        max_length=255,
        description="The memories' source name; defaults to the uploaded file's or the URL's.",
    )
    tags: list[str] = Field(default_factory=list, max_length=50, description="On every memory.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="On every memory.")
    chunk_size: int | None = Field(
        default=None, ge=200, le=20_000, description="Overrides the collection's, characters."
    )
    ocr: bool = Field(default=True, description="OCR pages without a text layer.")

    @model_validator(mode="after")
    def _url_scheme(self) -> DocumentParams:
        if self.file_url is not None and self.file_url.scheme not in ("http", "https"):
            raise ValueError("file_url must be an http or https URL")
        return self


def check(owner: Any, params: dict[str, Any], has_file: bool) -> None:
    """At create time: exactly one input, and a collection the caller owns."""
    if has_file == bool(params.get("file_url")):
        raise InvalidInput(
            "Give either an uploaded file (form field 'file') or a file_url, not both",
            details={"file": ["upload a file or give params.file_url"]}
            if not has_file
            else {"file_url": ["not with an uploaded file"]},
        )
    selectors.require_collection(owner, params["collection_id"])


# An XML part parsed whole takes up to ~25 times its size (measured: 48 MB of empty
# paragraphs, python-docx's parser, 1.1 GB); a part may have 1/32 of the job's memory.
XML_TREE_FACTOR = 32


def limits(params: DocumentParams) -> Limits:
    memory = settings.JOBSITE_DOC_MEMORY_MB * 1024 * 1024
    return Limits(
        max_bytes=settings.JOBSITE_MAX_UPLOAD_BYTES,
        max_pages=settings.JOBSITE_DOC_MAX_PAGES,
        max_unzipped_bytes=settings.JOBSITE_DOC_MAX_UNZIPPED_BYTES,
        max_xml_part_bytes=memory // XML_TREE_FACTOR if memory else Limits.max_xml_part_bytes,
        max_characters=settings.JOBSITE_DOC_MAX_CHARACTERS,
        ocr=params.ocr and settings.JOBSITE_OCR,
        ocr_languages=settings.JOBSITE_OCR_LANGUAGES,
    )


@register(
    "document_processing",
    params=DocumentParams,
    queue=Queue.DOCUMENTS,
    accepts_file=True,
    check=check,
    max_retries=2,
    time_limit=settings.JOBSITE_DOC_TIME_LIMIT,
    memory_limit_mb=settings.JOBSITE_DOC_MEMORY_MB,
    example={"collection_id": "3f1c…", "file_url": "https://example.com/report.pdf"},
)
def process_document(params: DocumentParams, progress: Progress) -> dict[str, Any]:
    """Extract a document's text, chunk it along its structure, store searchable memories."""
    from processing.documents import open_document  # the extractors load in workers only

    started = time.monotonic()
    collection = collection_for(params.collection_id)
    with tempfile.TemporaryDirectory(prefix="jobsite-doc-") as scratch:
        path, source = input_file(params, progress, Path(scratch))
        progress(1, "reading the document")
        document = open_document(path, limits(params))
        result = ingest(
            document,
            collection=collection,
            source=source,
            source_hash=file_sha256(path),
            progress=progress,
            chunk_size=params.chunk_size,
            tags=params.tags,
            metadata=params.metadata,
        )
    return {**result, "duration": round(time.monotonic() - started, 3)}


def collection_for(collection_id: uuid.UUID) -> Collection:
    """The job's collection, checked at create and gone since only if it was deleted."""
    collection = Collection.objects.filter(pk=collection_id, deleting_since__isnull=True).first()
    if collection is None:
        raise JobError("The collection was deleted before the job ran", code="collection_gone")
    return collection


def ingest(
    document: Document,
    *,
    collection: Collection,
    source: str,
    source_hash: str,
    progress: Progress,
    chunk_size: int | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An opened document into the collection's memories: read unit by unit (progress and
    cancel between units), chunked along its structure, stored in one transaction. The
    web pipeline ingests pages and the files behind URLs the same way."""
    size = chunk_size or collection.chunk_size
    chunks: list[chunking.Chunk] = []
    pages = ocr_pages = characters = 0
    heading: str | None = None
    total = document.unit_count
    for unit in document.units:
        pages += 1
        ocr_pages += unit.ocr
        characters += sum(len(block.text) for block in unit.blocks)
        chunks.extend(
            chunking.chunk_unit(unit, size=size, overlap=collection.chunk_overlap, heading=heading)
        )
        heading = chunking.last_heading(unit, heading)
        done = 90.0 * pages / total if total else min(89.0, float(pages))
        progress(2 + done, f"{unit.kind} {unit.number} of {total or '?'}")
    warnings = list(document.warnings)
    if not chunks:
        # Not a failure: an empty document or one of pictures only is a valid file,
        # and retrying would not change it. The result says so.
        warnings.append("The document contains no text (empty, or only images)")
    progress(95, f"storing {len(chunks)} memories")
    progress.flush()
    progress.check()  # a cancelled or lost attempt must not write
    stored = services.memories_store(
        collection_id=collection.pk,
        job_id=progress.job_id,
        source=source,
        source_type=document.format,
        source_hash=source_hash,
        chunks=chunks,
        tags=tags or [],
        metadata=metadata or {},
    )
    return {
        "collection_id": str(collection.pk),
        "source": source,
        "format": document.format,
        "title": document.title,
        "memories_created": stored.created,
        "memories_updated": stored.updated,
        "memories_removed": stored.removed,
        "memories": len(chunks),
        "pages": pages,
        "unit": _unit_name(chunks),
        "characters": characters,
        "ocr_pages": ocr_pages,
        "warnings": warnings,
    }


def _unit_name(chunks: list[chunking.Chunk]) -> str:
    return chunks[0].unit_kind if chunks else "page"
