"""What a media file is and holds, decided before any of it is decoded.

The kind comes from the file's first bytes, never from its name, and FFmpeg is then told
which demuxer to use: FFmpeg alone would guess among hundreds of formats (images, text,
playlists that name other files), and a file must not pick its own parser. The probe
reads only the container's header (duration, streams, codecs, sample rate) and refuses
what exceeds the limits with a message that names the limit, so a ten-hour or
hundred-stream file costs milliseconds, not a decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from jobs.api.base import JobError

# How much of the head is read to decide the kind.
SNIFF_BYTES = 4096
# Plausible sample rates: below, telephone audio has 8 kHz; above, studio masters 384 kHz.
# A header outside says the file is damaged (FFmpeg would "resample" 1 MHz of noise).
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 64

# Kind -> (FFmpeg demuxer forced on the file, whether it is a video container).
KINDS: dict[str, tuple[str, bool]] = {
    "wav": ("wav", False),
    "mp3": ("mp3", False),
    "flac": ("flac", False),
    "ogg": ("ogg", False),
    "mp4": ("mov", True),  # MP4, M4A and MOV are one family of boxes; the demuxer is one
    "matroska": ("matroska", True),  # MKV and WebM
}
SUPPORTED = "WAV, MP3, FLAC, OGG/Opus, M4A, MP4, WebM, MKV or MOV"
# Top-level boxes an MP4/MOV file may start with.
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"}


class MediaError(JobError):
    """The file cannot be analysed: a permanent failure with a specific message and code
    (``unsupported_type``, ``media_invalid``, ``too_large``, ``too_long``,
    ``too_many_streams``, ``no_audio``)."""

    code = "media_invalid"
    retryable = False


@dataclass(frozen=True)
class MediaLimits:
    """Bounds on one file, from settings (``from_settings``) or given by a test."""

    max_seconds: float = 4 * 3600.0
    max_streams: int = 8
    max_bytes: int = 200 * 1024 * 1024
    max_pixels: int = 3840 * 2160

    @classmethod
    def from_settings(cls) -> MediaLimits:
        return cls(
            max_seconds=settings.JOBSITE_MEDIA_MAX_SECONDS,
            max_streams=settings.JOBSITE_MEDIA_MAX_STREAMS,
            max_bytes=settings.JOBSITE_MAX_UPLOAD_BYTES,
            max_pixels=settings.JOBSITE_MEDIA_MAX_PIXELS,
        )


@dataclass(frozen=True)
class StreamInfo:
    index: int
    type: str  # audio, video, subtitle, data...
    codec: str | None
    sample_rate: int | None = None
    channels: int | None = None
    width: int | None = None
    height: int | None = None
    # A still picture in a video stream: an MP3's or M4A's cover art, not a video.
    cover_art: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class MediaInfo:
    """A probed file: what the job reports and what decoding needs."""

    kind: str  # a key of KINDS
    demuxer: str
    format: str  # FFmpeg's name for the container it read
    duration_s: float | None  # None where the header does not say (checked while decoding)
    size: int
    streams: list[StreamInfo] = field(default_factory=list)
    audio_stream: int | None = None  # index of the stream to transcribe
    video_stream: int | None = None  # index of the stream scenes are found in

    @property
    def is_video(self) -> bool:
        return self.video_stream is not None

    @property
    def label(self) -> str:
        """The kind as messages name it."""
        return "Matroska/WebM" if self.kind == "matroska" else self.kind.upper()

    @property
    def source_type(self) -> str:
        return "video" if self.is_video else "audio"


def sniff(head: bytes) -> str | None:
    """The kind of media these first bytes start, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "matroska"
    if head[4:8] in _MP4_BOXES:
        return "mp4"
    if head[:3] == b"ID3" and len(head) >= 10:
        # An ID3v2 tag (syncsafe size) may precede MP3 frames and, rarely, FLAC.
        size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        return "flac" if head[size : size + 4] == b"fLaC" else "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "mp3"  # an MPEG audio frame header (layer bits set)
    return None


def probe(path: Path, limits: MediaLimits) -> MediaInfo:
    """Read the container's header and check it against ``limits``; decode nothing."""
    import av  # FFmpeg loads in workers only

    size = path.stat().st_size
    if size == 0:
        raise MediaError("The file is empty", code="media_invalid")
    if size > limits.max_bytes:
        raise MediaError(
            f"The file is {size / 2**20:.0f} MB; at most {limits.max_bytes / 2**20:.0f} MB "
            "are accepted",
            code="too_large",
        )
    with path.open("rb") as handle:
        kind = sniff(handle.read(SNIFF_BYTES))
    if kind is None:
        raise MediaError(
            f"The file is not audio or video: its content is none of {SUPPORTED}",
            code="unsupported_type",
        )
    demuxer, _ = KINDS[kind]
    label = kind.upper() if kind != "matroska" else "Matroska/WebM"
    try:
        container = av.open(str(path), format=demuxer, metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(
            f"The {label} file is malformed: FFmpeg cannot read its header ({_reason(exc)})",
            code="media_invalid",
        ) from None
    with container:
        streams = [_stream(s) for s in container.streams]
        duration = container.duration / 1_000_000 if container.duration else None
        info = MediaInfo(
            kind=kind,
            demuxer=demuxer,
            format=container.format.name,
            duration_s=duration,
            size=size,
            streams=streams,
            audio_stream=next((s.index for s in streams if s.type == "audio"), None),
            video_stream=next(
                (s.index for s in streams if s.type == "video" and not s.cover_art), None
            ),
        )
    check(info, limits)
    return info


def check(info: MediaInfo, limits: MediaLimits) -> None:
    """Refuse, by name, what exceeds a limit or holds nothing worth decoding."""
    label = info.label
    if len(info.streams) > limits.max_streams:
        raise MediaError(
            f"The {label} file has {len(info.streams)} streams; at most {limits.max_streams} "
            "are accepted",
            code="too_many_streams",
        )
    if info.duration_s is not None and info.duration_s > limits.max_seconds:
        raise MediaError(
            f"The recording lasts {_clock(info.duration_s)}; at most "
            f"{_clock(limits.max_seconds)} are accepted",
            code="too_long",
        )
    if info.video_stream is not None:
        video = info.streams[info.video_stream]
        pixels = (video.width or 0) * (video.height or 0)
        if video.codec is None or not pixels:
            raise MediaError(
                f"The {label} file's video is in a codec FFmpeg cannot decode, or has no size",
                code="media_invalid",
            )
        if pixels > limits.max_pixels:
            raise MediaError(
                f"The {label} file's video is {video.width} x {video.height}; frames of at "
                f"most {limits.max_pixels:,} pixels (4K) are accepted",
                code="too_large",
            )
    if info.audio_stream is None:
        if info.is_video:
            return  # scenes still tell something: analysed without a transcript
        raise MediaError(
            "The file has no audio stream: there is nothing to analyse", code="no_audio"
        )
    audio = info.streams[info.audio_stream]
    if audio.codec is None:
        raise MediaError(
            f"The {label} file's audio is in a codec FFmpeg cannot decode", code="media_invalid"
        )
    if audio.sample_rate is not None and not MIN_SAMPLE_RATE <= audio.sample_rate <= (
        MAX_SAMPLE_RATE
    ):
        raise MediaError(
            f"The {label} file is malformed: its header gives a sample rate of "
            f"{audio.sample_rate} Hz (a real recording has {MIN_SAMPLE_RATE // 1000} to "
            f"{MAX_SAMPLE_RATE // 1000} kHz)",
            code="media_invalid",
        )
    if not audio.channels or audio.channels > MAX_CHANNELS:
        raise MediaError(
            f"The {label} file is malformed: its header gives {audio.channels or 0} audio channels",
            code="media_invalid",
        )


def _stream(stream: Any) -> StreamInfo:
    context = stream.codec_context
    codec = context.name if context is not None else None
    if stream.type == "audio" and context is not None:
        return StreamInfo(
            stream.index,
            "audio",
            codec,
            sample_rate=context.sample_rate or None,
            channels=context.channels,
        )
    if stream.type == "video" and context is not None:
        return StreamInfo(
            stream.index,
            "video",
            codec,
            width=context.width,
            height=context.height,
            cover_art=bool(stream.disposition & type(stream.disposition).attached_pic),
        )
    return StreamInfo(stream.index, str(stream.type), codec)


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words without the path (``[Errno …] Invalid data …: '/tmp/…'``)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '")[0].strip() or type(exc).__name__


def _clock(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"
