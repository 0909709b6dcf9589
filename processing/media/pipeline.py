"""The ``media_analysis`` job: a recording (uploaded, or fetched from ``file_url``) into
timed, searchable memories in a collection.

Probe first (limits refused before any decoding), then decode in blocks, find the speech,
and transcribe it span by span: progress is in seconds of media, a cancel takes effect
between spans, and every memory knows when its words were said. All memories are stored
in one transaction after the last span, so a cancelled or failed job writes nothing, and
a re-run of the same file into the same collection replaces its memories.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from jobs.api.base import InvalidInput
from jobs.queues import Queue
from jobs.registry import register
from jobs.runtime import Progress
from processing import chunking, services
from processing.documents.pipeline import check as document_check
from processing.documents.pipeline import collection_for
from processing.inputs import file_sha256, input_file

# These modules import FFmpeg (PyAV), numpy and the models inside their functions only:
# the web process, which registers this job type, never loads them.
from processing.media import decode, engines, probe, speech
from processing.media.engines import CHOICES, MODELS, Segment

if TYPE_CHECKING:
    import numpy as np

# A pause longer than this between two segments ends a memory: a new topic, or a new
# scene, more often than not, and a hit should not cite a stretch spanning it.
LONG_SILENCE_S = 3.0


class MediaParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection_id: uuid.UUID = Field(description="The collection the memories go into.")
    file_url: HttpUrl | None = Field(
        default=None, description="Fetch the recording from here (or upload it as `file`)."
    )
    filename: str | None = Field(
        default=None,
        max_length=255,
        description="The memories' source name; defaults to the uploaded file's or the URL's.",
    )
    model: Literal["quality", "light"] | None = Field(
        default=None,
        description="quality (Whisper base, multilingual) or light (Whisper tiny.en, English "
        "only, ~3 times faster); default JOBSITE_MEDIA_MODEL.",
    )
    language: str | None = Field(
        default=None,
        min_length=2,
        max_length=3,
        pattern=r"^[a-z]{2,3}$",
        description="The spoken language (ISO 639-1, e.g. en); default: detected from the "
        "first speech.",
    )
    tags: list[str] = Field(default_factory=list, max_length=50, description="On every memory.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="On every memory.")
    chunk_size: int | None = Field(
        default=None, ge=200, le=20_000, description="Overrides the collection's, characters."
    )

    @model_validator(mode="after")
    def _url_scheme(self) -> MediaParams:
        if self.file_url is not None and self.file_url.scheme not in ("http", "https"):
            raise ValueError("file_url must be an http or https URL")
        return self


def model_choice(params: MediaParams | dict[str, Any]) -> str:
    value = params.get("model") if isinstance(params, dict) else params.model
    return value or settings.JOBSITE_MEDIA_MODEL


def check(owner: Any, params: dict[str, Any], has_file: bool) -> None:
    """At create time: one input, a collection the caller owns, a language the model has."""
    document_check(owner, params, has_file)
    choice = model_choice(params)
    if choice not in CHOICES:
        raise InvalidInput(
            f"JOBSITE_MEDIA_MODEL names no model ({choice!r})",
            details={"model": [f"one of {', '.join(CHOICES)}"]},
        )
    language = params.get("language")
    if MODELS[choice].english_only and language not in (None, "en"):
        raise InvalidInput(
            f"The {choice} model transcribes English only",
            details={"language": ["en, or choose model 'quality'"]},
        )


@dataclass
class TimedChunk(chunking.Chunk):
    """A memory of a recording: a run of segments and when it was said. ``unit`` is the
    first segment's number (the ``page`` a hit cites), ``blocks`` the first and last.
    ``cues`` time each segment by where its text starts in the memory's (character offset,
    start, end): a hit in a minute-long memory can cite the second its phrase was said."""

    start_s: float = 0.0
    end_s: float = 0.0
    cues: tuple[tuple[int, float, float], ...] = ()

    def position(self) -> dict[str, Any]:
        return {
            "start_s": self.start_s,
            "end_s": self.end_s,
            "segments": list(self.blocks),
            "cues": [list(cue) for cue in self.cues],
        }


def group(segments: list[Segment], *, size: int) -> list[TimedChunk]:
    """Consecutive segments into memories of about ``size`` characters, never across a
    long silence; a segment is never cut."""
    chunks: list[TimedChunk] = []
    run: list[int] = []

    def flush() -> None:
        if run:
            first, last = segments[run[0]], segments[run[-1]]
            cues, offset = [], 0
            for i in run:
                cues.append((offset, segments[i].start_s, segments[i].end_s))
                offset += len(segments[i].text) + 1
            chunks.append(
                TimedChunk(
                    text=" ".join(segments[i].text for i in run),
                    unit=run[0] + 1,
                    unit_kind="segment",
                    blocks=(run[0] + 1, run[-1] + 1),
                    start_s=first.start_s,
                    end_s=last.end_s,
                    cues=tuple(cues),
                )
            )
            run.clear()

    length = 0
    for index, segment in enumerate(segments):
        if run:
            gap = segment.start_s - segments[run[-1]].end_s
            if gap > LONG_SILENCE_S or length + 1 + len(segment.text) > size:
                flush()
                length = 0
        length += len(segment.text) + (1 if run else 0)
        run.append(index)
    flush()
    return chunks


class _Reporter:
    """Progress in seconds of media: after each span transcribed, and after each block
    decoded (a long silence has no spans, and must still move and be cancellable)."""

    def __init__(self, progress: Progress, total: float | None) -> None:
        self.progress = progress
        self.total = total
        self.done = 0.0

    def __call__(self, seconds: float) -> None:
        self.done = max(self.done, seconds)  # a span held over a block boundary comes later
        if self.total:
            share = min(self.done / self.total, 1.0)
            self.progress(3 + 92 * share, f"{self.done:.0f} s of {self.total:.0f} s")
        else:
            self.progress(3, f"{self.done:.0f} s")

    def after_each(
        self, blocks: Iterator[np.ndarray], decoded: decode.Decoded
    ) -> Iterator[np.ndarray]:
        for block in blocks:
            yield block
            self(decoded.seconds)  # this block's spans are transcribed by now


@register(
    "media_analysis",
    params=MediaParams,
    queue=Queue.MEDIA,
    accepts_file=True,
    check=check,
    max_retries=2,
    time_limit=settings.JOBSITE_MEDIA_TIME_LIMIT,
    memory_limit_mb=settings.JOBSITE_MEDIA_MEMORY_MB,
    example={"collection_id": "3f1c…", "file_url": "https://example.com/talk.mp3"},
)
def analyse_media(params: MediaParams, progress: Progress) -> dict[str, Any]:
    """Transcribe a recording's speech into timed, searchable memories."""
    started = time.monotonic()
    collection = collection_for(params.collection_id)
    limits = probe.MediaLimits.from_settings()
    with tempfile.TemporaryDirectory(prefix="jobsite-media-") as scratch:
        path, source = input_file(params, progress, Path(scratch))
        progress(1, "probing")
        info = probe.probe(path, limits)
        source_hash = file_sha256(path)
        progress(2, "loading the speech model")
        engine = engines.engine(
            model_choice(params), language=params.language, threads=settings.JOBSITE_MEDIA_THREADS
        )
        report = _Reporter(progress, info.duration_s)
        decoded = decode.Decoded()
        segments: list[Segment] = []
        transcribing = time.monotonic()
        blocks = decode.blocks(path, info, limits, decoded)
        for span in speech.spans(report.after_each(blocks, decoded)):
            progress.check()
            segments.extend(engine.transcribe(span.audio, span.start_s))
            report(span.end_s)
        transcribing = time.monotonic() - transcribing
    duration = decoded.seconds
    chunks = group(segments, size=params.chunk_size or collection.chunk_size)
    warnings = []
    if not segments:
        warnings.append("No speech was found in the recording")
    if decoded.bad_packets:
        warnings.append(f"{decoded.bad_packets} damaged parts of the audio were skipped")
    progress(96, f"storing {len(chunks)} memories")
    progress.flush()
    progress.check()  # a cancelled or lost attempt must not write
    stored = services.memories_store(
        collection_id=collection.pk,
        job_id=progress.job_id,
        source=source,
        source_type=info.source_type,
        source_hash=source_hash,
        chunks=chunks,
        tags=params.tags,
        metadata=params.metadata,
    )
    elapsed = time.monotonic() - started
    return {
        "collection_id": str(collection.pk),
        "source": source,
        "format": info.format,
        "kind": info.kind,
        "streams": [s.as_dict() for s in info.streams],
        "duration_s": round(duration, 2),
        "language": engine.language,
        "engine": engine.engine,
        "model": engine.model,
        "segments": len(segments),
        "words": sum(len(s.text.split()) for s in segments),
        "memories": len(chunks),
        "memories_created": stored.created,
        "memories_updated": stored.updated,
        "memories_removed": stored.removed,
        "key_moments": [],
        "real_time_factor": round(transcribing / duration, 3) if duration else None,
        "seconds": round(elapsed, 3),
        "warnings": warnings,
    }
