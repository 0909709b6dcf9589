"""The ``media_analysis`` job: a recording (uploaded, or fetched from ``file_url``) into
timed, searchable memories in a collection.

Probe first (limits refused before any decoding), then decode in blocks, find the speech,
and transcribe it span by span: progress is in seconds of media, a cancel takes effect
between spans, and every memory knows when its words were said. All memories are stored
in one transaction after the last span, so a cancelled or failed job writes nothing, and
a re-run of the same file into the same collection replaces its memories.
"""

from __future__ import annotations

import bisect
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
from processing.media import decode, engines, moments, probe, scenes, speech
from processing.media.engines import CHOICES, MODELS, Segment

if TYPE_CHECKING:
    import numpy as np

# A file whose audio ends this much before its header's duration is reported truncated.
TRUNCATED_SLACK_S = 1.0


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
    scene: int | None = None

    def position(self) -> dict[str, Any]:
        place = {
            "start_s": self.start_s,
            "end_s": self.end_s,
            "segments": list(self.blocks),
            "cues": [list(cue) for cue in self.cues],
        }
        if self.scene is not None:
            place["scene"] = self.scene
        return place


def scene_of(segment: Segment, starts: list[float]) -> int | None:
    """The number (from 1) of the scene a segment's middle falls in; None without scenes."""
    if not starts:
        return None
    middle = (segment.start_s + segment.end_s) / 2
    return bisect.bisect_right(starts, middle)


def group(
    segments: list[Segment], *, size: int, scene_starts: list[float] | None = None
) -> list[TimedChunk]:
    """Consecutive segments into memories of about ``size`` characters, never across a
    long silence or a scene change (a segment belongs to the scene its middle is in, so
    a scene's words are found in the memories of its time range); a segment is never cut."""
    starts = scene_starts or []
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
                    scene=scene_of(first, starts),
                )
            )
            run.clear()

    length = 0
    for index, segment in enumerate(segments):
        if run:
            gap = segment.start_s - segments[run[-1]].end_s
            if (
                gap >= moments.LONG_SILENCE_S
                or length + 1 + len(segment.text) > size
                or scene_of(segment, starts) != scene_of(segments[run[-1]], starts)
            ):
                flush()
                length = 0
        length += len(segment.text) + (1 if run else 0)
        run.append(index)
    flush()
    return chunks


class _Reporter:
    """Progress in seconds of media over a share of the bar (``low`` to ``high``): after
    each span transcribed, after each block decoded (a long silence has no spans, and must
    still move and be cancellable), after each window of frames searched for scenes."""

    def __init__(
        self, progress: Progress, total: float | None, low: float, high: float, what: str = ""
    ) -> None:
        self.progress = progress
        self.total = total
        self.low, self.high = low, high
        self.what = what
        self.done = 0.0

    def __call__(self, seconds: float) -> None:
        self.done = max(self.done, seconds)  # a span held over a block boundary comes later
        if self.total:
            share = min(self.done / self.total, 1.0)
            step = f"{self.what}{self.done:.0f} s of {self.total:.0f} s"
            self.progress(self.low + (self.high - self.low) * share, step)
        else:
            self.progress(self.low, f"{self.what}{self.done:.0f} s")

    def after_each(
        self, blocks: Iterator[np.ndarray], decoded: decode.Decoded
    ) -> Iterator[np.ndarray]:
        for block in blocks:
            yield block
            self(decoded.seconds)  # this block's spans are transcribed by now


@dataclass
class Heard:
    """What the audio track gave: nothing, for a video without one."""

    segments: list[Segment]
    levels: list[float]
    seconds: float = 0.0
    bad_packets: int = 0
    transcribing: float = 0.0
    language: str | None = None
    engine: str | None = None
    model: str | None = None


def transcribe(
    path: Path,
    info: probe.MediaInfo,
    limits: probe.MediaLimits,
    params: MediaParams,
    progress: Progress,
    low: float,
) -> Heard:
    """The audio track, span by span, into timed segments (and its loudness on the way)."""
    if info.audio_stream is None:
        return Heard([], [])
    progress(low, "loading the speech model")
    engine = engines.engine(
        model_choice(params), language=params.language, threads=settings.JOBSITE_MEDIA_THREADS
    )
    report = _Reporter(progress, info.duration_s, low, 95)
    decoded = decode.Decoded()
    levels = moments.Levels()
    segments: list[Segment] = []
    started = time.monotonic()
    blocks = levels.follow(decode.blocks(path, info, limits, decoded))
    for span in speech.spans(report.after_each(blocks, decoded)):
        progress.check()
        segments.extend(engine.transcribe(span.audio, span.start_s))
        report(span.end_s)
    return Heard(
        segments,
        levels.dbfs,
        seconds=decoded.seconds,
        bad_packets=decoded.bad_packets,
        transcribing=time.monotonic() - started,
        language=engine.language,
        engine=engine.engine,
        model=engine.model,
    )


def scene_list(starts: list[float], duration: float) -> list[dict[str, Any]]:
    """A video's scenes with their time ranges; an audio file has none."""
    if not starts:
        return []
    ends = [*starts[1:], duration]
    return [
        {"scene": n, "start_s": round(a, 2), "end_s": round(b, 2)}
        for n, (a, b) in enumerate(zip(starts, ends, strict=True), start=1)
    ]


def warnings_for(info: probe.MediaInfo, heard: Heard, duration: float) -> list[str]:
    found = []
    if info.audio_stream is None:
        found.append("The video has no audio track: scenes only, no transcript")
    elif not heard.segments:
        found.append("No speech was found in the recording")
    if heard.bad_packets:
        found.append(f"{heard.bad_packets} damaged parts of the audio were skipped")
    if info.duration_s and duration < info.duration_s - TRUNCATED_SLACK_S:
        found.append(
            f"The file ends after {duration:.1f} s of the {info.duration_s:.1f} s its header "
            "gives: it is truncated, and what is there was analysed"
        )
    return found


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
    """Transcribe a recording's speech into timed, searchable memories, and find its key
    moments (and a video's scenes)."""
    started = time.monotonic()
    collection = collection_for(params.collection_id)
    limits = probe.MediaLimits.from_settings()
    with tempfile.TemporaryDirectory(prefix="jobsite-media-") as scratch:
        path, source = input_file(params, progress, Path(scratch))
        progress(1, "probing")
        info = probe.probe(path, limits)
        source_hash = file_sha256(path)
        cuts: list[scenes.Cut] = []
        low = 3.0
        if info.video_stream is not None:
            # Frames cost less than speech: a tenth of the bar, or all of it without audio.
            low = 13.0 if info.audio_stream is not None else 95.0
            cuts = scenes.cuts(path, info, _Reporter(progress, info.duration_s, 3, low, "scenes: "))
        heard = transcribe(path, info, limits, params, progress, low)
    duration = heard.seconds or info.duration_s or 0.0
    starts = [0.0, *(cut.t for cut in cuts)] if info.is_video else []
    chunks = group(
        heard.segments, size=params.chunk_size or collection.chunk_size, scene_starts=starts
    )
    found = moments.key_moments(cuts, heard.segments, heard.levels, duration, heard.language)
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
    segments = heard.segments
    return {
        "collection_id": str(collection.pk),
        "source": source,
        "format": info.format,
        "kind": info.kind,
        "streams": [s.as_dict() for s in info.streams],
        "duration_s": round(duration, 2),
        "language": heard.language,
        "engine": heard.engine,
        "model": heard.model,
        "segments": len(segments),
        "words": sum(len(s.text.split()) for s in segments),
        "memories": len(chunks),
        "memories_created": stored.created,
        "memories_updated": stored.updated,
        "memories_removed": stored.removed,
        "scenes": scene_list(starts, duration),
        "key_moments": [m.as_dict() for m in found],
        "real_time_factor": round(heard.transcribing / duration, 3) if heard.seconds else None,
        "seconds": round(time.monotonic() - started, 3),
        "warnings": warnings_for(info, heard, duration),
    }
