"""Transcription quality and speed on the corpus recordings, for both models.

Word error rate against each recording's ``.txt`` reference, per file and overall (the
edit distance over words divided by the reference's words, summed over files), after
normalising case and punctuation only: no per-file tuning, no spelling of numbers or
titles ("Mr." stays an error against "mister"). The real-time factor is the job's path
(decode, voice detection, transcription) over the audio's duration, the model already
loaded, on ``JOBSITE_MEDIA_THREADS`` threads. Target: the quality model at most 3%.

    python -m bench.media
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from tests.corpus import require_corpus

FOLDER = "audio"
TARGET = 0.03
_PUNCTUATION = re.compile(r"[^\w\s']|_")


def normalise(text: str) -> list[str]:
    """Lower case, punctuation (hyphens too) as spaces: the words left to compare."""
    return _PUNCTUATION.sub(" ", text.lower()).replace(" '", " ").split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions, deletions and insertions that turn one word list into the other."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str) -> float:
    ref = normalise(reference)
    return word_errors(ref, normalise(hypothesis)) / max(1, len(ref))


def recordings(folder: Path) -> list[tuple[Path, str]]:
    """The corpus recordings and their reference transcripts."""
    return [
        (wav, wav.with_suffix(".txt").read_text(encoding="utf-8"))
        for wav in sorted(folder.glob("*.wav"))
    ]


def transcribe(path: Path, engine: Any) -> tuple[str, float, float]:
    """The job's path for one file: its text, its duration and the seconds it took."""
    from processing.media import decode, probe, speech

    started = time.perf_counter()
    limits = probe.MediaLimits.from_settings()
    info = probe.probe(path, limits)
    decoded = decode.Decoded()
    texts = [
        segment.text
        for span in speech.spans(decode.blocks(path, info, limits, decoded))
        for segment in engine.transcribe(span.audio, span.start_s)
    ]
    return " ".join(texts), decoded.seconds, time.perf_counter() - started


def row(
    choice: str, model: str, name: str, reference: str, text: str, seconds: float, took: float
) -> dict[str, Any]:
    """One line of the table: a file's word errors and real-time factor."""
    ref = normalise(reference)
    wrong = word_errors(ref, normalise(text))
    return {
        "model": f"{choice} ({model})",
        "file": name,
        "seconds": round(seconds, 1),
        "words": len(ref),
        "errors": wrong,
        "WER": f"{wrong / len(ref):.1%}",
        "RTF": round(took / seconds, 3),
    }


def measure(
    choice: str, files: list[tuple[Path, str]], threads: int, long: tuple[Path, str] | None
) -> list[dict[str, Any]]:
    from processing.media import engines

    started = time.perf_counter()
    engines.load(choice, threads=threads)
    loaded = time.perf_counter() - started
    rows = []
    errors = words = 0
    audio = spent = 0.0
    for path, reference in files:
        engine = engines.engine(choice, threads=threads)
        text, seconds, took = transcribe(path, engine)
        rows.append(
            row(choice, engine.model, path.stem.rsplit("-", 1)[-1], reference, text, seconds, took)
        )
        errors, words = errors + rows[-1]["errors"], words + rows[-1]["words"]
        audio, spent = audio + seconds, spent + took
    rows.append(
        {
            "model": f"{choice} ({engine.model})",
            "file": f"overall (model load {loaded:.1f} s)",
            "seconds": round(audio, 1),
            "words": words,
            "errors": errors,
            "WER": f"{errors / words:.1%}",
            "RTF": round(spent / audio, 3),
        }
    )
    if long:
        text, seconds, took = transcribe(long[0], engines.engine(choice, threads=threads))
        rows.append(
            row(choice, engine.model, "all five x4, one file", long[1], text, seconds, took)
        )
    return rows


def concatenated(files: list[tuple[Path, str]], folder: Path) -> tuple[Path, str]:
    """The five recordings four times over in one file, 1 s apart (~2 min): the real-time
    factor of a longer recording, where a span is not one short sentence."""
    from tests import media

    path = media.concatenate([p for p, _ in files], folder / "long.wav", times=4, gap_s=1.0)
    return path, " ".join([" ".join(reference for _, reference in files)] * 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["quality", "light"])
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    import logging

    import django

    django.setup()
    from django.conf import settings

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    files = recordings(require_corpus() / FOLDER)
    threads = settings.JOBSITE_MEDIA_THREADS
    with tempfile.TemporaryDirectory() as scratch:
        long = concatenated(files, Path(scratch))
        rows = [r for choice in args.models for r in measure(choice, files, threads, long)]
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(row[c])) for row in rows)) for c in columns}
    print(f"{len(files)} corpus recordings, {threads} thread(s), target quality <= {TARGET:.0%}")
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    report.append(
        "Media: transcription word error rate and real-time factor",
        "python -m bench.media",
        f"{len(files)} corpus recordings (`audio/`), case and punctuation normalised only; "
        f"RTF = decode + voice detection + transcription over duration, {threads} thread(s). "
        f"Target: quality <= {TARGET:.0%} overall.\n\n" + report.table(rows),
    )


if __name__ == "__main__":
    main()
