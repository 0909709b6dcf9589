"""A recording's key moments: where a viewer or listener would want to jump to.

Four kinds, each with a time, a score (0-1, comparable within a kind) and a short label:

- ``scene_change``: a video's new scene (``scenes``), scored by how different it looks;
- ``speech_after_silence``: speech starting after at least ``LONG_SILENCE_S`` of none (a
  new topic, speaker or chapter, more often than not), scored by the pause's length;
- ``loudness_peak``: the loudest stretches, where they stand out from the recording's own
  level (applause, a raised voice, music), scored by how far;
- ``key_terms``: the segments densest in the recording's own key terms (``terms``), the
  passages about what the recording is about.

All are computed from what the pipeline has anyway (cuts, timed segments, the decoded
samples' levels), in time and memory proportional to the recording's minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from processing import terms
from processing.media.decode import SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

    from processing.media.engines import Segment
    from processing.media.scenes import Cut

# A pause at least this long before speech makes its start a moment (and ends a memory).
LONG_SILENCE_S = 3.0
# A pause this long scores 1.0.
FULL_SILENCE_S = 30.0
# Loudness is measured over windows of this length (RMS, in dBFS).
LEVEL_WINDOW_S = 0.5
# Windows quieter than this are silence, left out of the recording's typical level.
SILENCE_DBFS = -55.0
# A peak stands at least this far above the typical (median) level of the sound...
PEAK_DB = 6.0
# ...is the loudest within this many seconds either side...
PEAK_SPACING_S = 10.0
# ...and there is at most one per this many seconds of recording (at least one), up to a cap.
PEAK_EVERY_S = 60.0
# The cap of loudness peaks and of key-term moments.
MAX_PER_KIND = 20
# Key-term moments: about one segment in ten, and only where the density is at least half
# the densest segment's.
KEY_TERM_SHARE = 0.1
LABEL_CHARS = 60


@dataclass(frozen=True)
class KeyMoment:
    t: float
    kind: str
    score: float
    label: str

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 2), "kind": self.kind, "score": self.score, "label": self.label}


@dataclass
class Levels:
    """The loudness of each ``LEVEL_WINDOW_S`` of the decoded audio, gathered as the
    blocks go by (4 h of audio is 28,800 floats)."""

    window: int = int(LEVEL_WINDOW_S * SAMPLE_RATE)
    dbfs: list[float] = field(default_factory=list)
    _rest: Any = None

    def follow(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Pass the blocks through, measuring each on the way."""
        import numpy as np

        for block in blocks:
            samples = block if self._rest is None else np.concatenate([self._rest, block])
            whole = samples.size // self.window * self.window
            if whole:
                frames = samples[:whole].reshape(-1, self.window).astype(np.float64)
                rms = np.sqrt(np.mean(frames * frames, axis=1))
                self.dbfs.extend((20 * np.log10(np.maximum(rms, 1e-10))).round(2).tolist())
            self._rest = samples[whole:].copy()
            yield block


def scene_changes(cuts: Sequence[Cut]) -> list[KeyMoment]:
    return [
        KeyMoment(cut.t, "scene_change", cut.score, f"Scene {number} starts")
        for number, cut in enumerate(cuts, start=2)
    ]


def speech_after_silence(segments: Sequence[Segment]) -> list[KeyMoment]:
    """Each segment that starts ``LONG_SILENCE_S`` or more after the speech before it
    (or after the recording's start)."""
    found, previous_end = [], 0.0
    for segment in segments:
        gap = segment.start_s - previous_end
        if gap >= LONG_SILENCE_S:
            found.append(
                KeyMoment(
                    segment.start_s,
                    "speech_after_silence",
                    round(min(1.0, gap / FULL_SILENCE_S), 3),
                    f"After {gap:.0f} s of silence: {_quote(segment.text)}",
                )
            )
        previous_end = max(previous_end, segment.end_s)
    return found


def loudness_peaks(levels: Sequence[float], duration_s: float) -> list[KeyMoment]:
    """The loudest windows that stand ``PEAK_DB`` above the sound's median level and are
    the loudest in their neighbourhood, loudest first up to one per ``PEAK_EVERY_S``."""
    import numpy as np

    values = np.asarray(levels, dtype=np.float64)
    sound = values[values > SILENCE_DBFS]
    if sound.size == 0:
        return []
    median = float(np.median(sound))
    reach = int(PEAK_SPACING_S / LEVEL_WINDOW_S)
    candidates = []
    for index in np.flatnonzero(values >= median + PEAK_DB):
        around = values[max(0, index - reach) : index + reach + 1]
        if values[index] == around.max() and (not candidates or index - candidates[-1] > reach):
            candidates.append(int(index))
    wanted = min(MAX_PER_KIND, max(1, int(duration_s // PEAK_EVERY_S)))
    loudest = sorted(candidates, key=lambda i: -values[i])[:wanted]
    return [
        KeyMoment(
            i * LEVEL_WINDOW_S,
            "loudness_peak",
            round(min(1.0, float(values[i] - median) / 20), 3),
            f"Loud: {values[i]:.0f} dBFS, {values[i] - median:.0f} dB above the median",
        )
        for i in sorted(loudest)
    ]


def key_term_segments(segments: Sequence[Segment], language: str | None) -> list[KeyMoment]:
    """The segments densest in the recording's key terms, named by the terms they hold."""
    found = terms.key_terms((s.text for s in segments), language)
    if not found:
        return []
    scored = [(terms.density(s.text, found, language), i) for i, s in enumerate(segments)]
    best = max(score for score, _ in scored)
    wanted = min(MAX_PER_KIND, max(1, round(len(segments) * KEY_TERM_SHARE)))
    chosen = sorted((item for item in scored if item[0] >= best / 2), key=lambda item: -item[0])[
        :wanted
    ]
    moments = []
    for score, index in sorted(chosen, key=lambda item: item[1]):
        segment = segments[index]
        held = list(dict.fromkeys(w for w in terms.words(segment.text, language) if w in found))
        moments.append(
            KeyMoment(
                segment.start_s,
                "key_terms",
                round(score / best, 3),
                f"Key terms: {', '.join(held[:5])}",
            )
        )
    return moments


def key_moments(
    cuts: Sequence[Cut],
    segments: Sequence[Segment],
    levels: Sequence[float],
    duration_s: float,
    language: str | None,
) -> list[KeyMoment]:
    """Every kind, in time order (kinds in the order above where two share a time)."""
    moments = [
        *scene_changes(cuts),
        *speech_after_silence(segments),
        *loudness_peaks(levels, duration_s),
        *key_term_segments(segments, language),
    ]
    return sorted(moments, key=lambda m: m.t)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return f"“{text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1].rstrip() + '…'}”"
