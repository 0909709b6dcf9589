"""A probed file's audio as 16 kHz mono float32, in blocks of bounded size.

Speech models take 16 kHz mono; FFmpeg's resampler (through PyAV) does the conversion
from any rate and channel layout. The audio comes out in blocks of ``BLOCK_SECONDS``
instead of one array, so memory stays the same for a minute or four hours (a four-hour
array would be 0.9 GB), and the job reports progress and honours a cancel while it
reads. Only the chosen audio stream's packets are decoded: a video's frames are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from processing.media.probe import MediaError, MediaInfo, MediaLimits, _clock, _reason

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000
# Five minutes: 19 MB of float32, and few enough blocks that voice detection rarely meets
# a block boundary (speech across one is carried into the next block, see ``speech``).
BLOCK_SECONDS = 300
# Damaged packets skipped before the file counts as broken (a real MP3 may have a few).
MAX_BAD_PACKETS = 50


class Decoded:
    """Counts what was decoded, for the result (``seconds``) and the warnings."""

    def __init__(self) -> None:
        self.samples = 0
        self.bad_packets = 0

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE


def blocks(
    path: Path,
    info: MediaInfo,
    limits: MediaLimits,
    decoded: Decoded | None = None,
    *,
    block_seconds: float = BLOCK_SECONDS,
) -> Iterator[np.ndarray]:
    """Yield the audio stream as float32 arrays of ``block_seconds`` (the last shorter).

    A header may lie about the duration, or give none: decoding stops with ``too_long``
    as soon as the audio passes the limit, so the bound holds either way."""
    import av
    import numpy as np

    decoded = decoded or Decoded()
    assert info.audio_stream is not None  # the probe refuses files without audio
    label = info.label
    max_samples = int(limits.max_seconds * SAMPLE_RATE) + SAMPLE_RATE  # a second's grace
    size = max(1, int(block_seconds * SAMPLE_RATE))
    pending: list[np.ndarray] = []
    pending_samples = 0

    def take(frames: list[av.AudioFrame]) -> None:
        nonlocal pending_samples
        for frame in frames:
            samples = frame.to_ndarray().reshape(-1)
            pending.append(samples)
            pending_samples += samples.size
            decoded.samples += samples.size
        if decoded.samples > max_samples:
            raise MediaError(
                f"The recording lasts longer than {_clock(limits.max_seconds)}, the most "
                "accepted (its header did not say so)",
                code="too_long",
            )

    def ready(final: bool) -> Iterator[np.ndarray]:
        nonlocal pending, pending_samples
        while pending_samples >= size or (final and pending_samples):
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            block, rest = joined[:size], joined[size:]
            pending, pending_samples = ([rest] if rest.size else []), rest.size
            yield np.ascontiguousarray(block, dtype=np.float32)

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    try:
        with av.open(str(path), format=info.demuxer, metadata_errors="ignore") as container:
            stream = container.streams[info.audio_stream]
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except (av.FFmpegError, ValueError) as exc:
                    decoded.bad_packets += 1
                    if decoded.bad_packets > MAX_BAD_PACKETS:
                        raise MediaError(
                            f"The {label} file is damaged: more than {MAX_BAD_PACKETS} parts "
                            f"of its audio cannot be decoded ({_reason(exc)})",
                            code="media_invalid",
                        ) from None
                    continue
                for frame in frames:
                    take(resampler.resample(frame))
                yield from ready(final=False)
            take(resampler.resample(None))
    except av.FFmpegError as exc:
        raise MediaError(
            f"The {label} file is damaged: reading stopped after "
            f"{decoded.seconds:.1f} s ({_reason(exc)})",
            code="media_invalid",
        ) from None
    yield from ready(final=True)
    if decoded.samples == 0:
        raise MediaError(f"The {label} file holds no audio samples", code="no_audio")
