"""Where the speech is: voice-activity detection over the decoded blocks.

Transcribing span by span (not the whole file in one call) is what makes progress in
seconds of media, a cancel between spans and real timestamps possible, and it skips the
silences a speech model would otherwise fill with invented words. The detector is the
Silero VAD model that faster-whisper ships (ONNX, in its wheel; nothing downloaded).

Blocks are analysed one at a time, so a span may run across a block boundary: a span that
reaches the end of a block is held back with the audio after its start and analysed again
with the next block. What is held back is at most one span (``MAX_SPAN_SECONDS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from processing.media.decode import SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

# Whisper reads 30 s windows: a longer span is cut at its longest pause inside.
MAX_SPAN_SECONDS = 30.0
# A pause this long ends a span; shorter ones (between words, sentences) stay inside it.
# Whisper encodes a full 30 s window per call however short the span: on the corpus video
# 2 s (faster-whisper's own default) took 0.19 x real time where 0.5 s took 0.31, with the
# same words.
MIN_SILENCE_MS = 2000
# Audio kept either side of a span, so a word's first and last sounds are not clipped.
PAD_MS = 200
# A span ending this close to a block's end may go on in the next block: held back.
HOLD_SECONDS = 1.0
# Kept from a block's end even when no span reaches it: the padding of a span that starts
# right at the boundary.
CARRY_SECONDS = 0.5


@dataclass(frozen=True)
class Span:
    start_s: float
    audio: np.ndarray

    @property
    def end_s(self) -> float:
        return self.start_s + self.audio.size / SAMPLE_RATE


def spans(blocks: Iterable[np.ndarray]) -> Iterator[Span]:
    """The speech spans of consecutive blocks, in order, with their times in the file."""
    import numpy as np
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        min_silence_duration_ms=MIN_SILENCE_MS,
        speech_pad_ms=PAD_MS,
        max_speech_duration_s=MAX_SPAN_SECONDS,
    )
    hold = int(HOLD_SECONDS * SAMPLE_RATE)
    carry_size = int(CARRY_SECONDS * SAMPLE_RATE)
    carry = np.zeros(0, dtype=np.float32)
    carry_start = 0  # the sample (in the file) where ``carry`` starts
    held = False
    # No look-ahead at the next block: the caller counts a block as done once the next one
    # is asked for (progress), so a block is asked for only when the last one's spans are.
    for block in blocks:
        buffer = np.concatenate([carry, block]) if carry.size else block
        found = get_speech_timestamps(buffer, options, sampling_rate=SAMPLE_RATE)
        keep_from = max(0, buffer.size - carry_size)
        held = bool(found) and found[-1]["end"] >= buffer.size - hold
        if held:
            keep_from = found.pop()["start"]
        for span in found:
            yield Span(
                (carry_start + span["start"]) / SAMPLE_RATE, buffer[span["start"] : span["end"]]
            )
        carry = buffer[keep_from:].copy()
        carry_start += keep_from
    if held:  # the recording ended inside a span: it is all there now
        for span in get_speech_timestamps(carry, options, sampling_rate=SAMPLE_RATE):
            yield Span(
                (carry_start + span["start"]) / SAMPLE_RATE, carry[span["start"] : span["end"]]
            )
