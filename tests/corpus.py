"""Where the real-world test corpus is: the one place tests and benchmarks find it.

The corpus (real papers, office files, web pages, recordings and known-bad inputs; see its
README) lives beside the project, not in it: ``JOBSITE_CORPUS`` names its folder, and the
default is ``../shared/corpus`` from the project root. A clone without it still passes its
tests: the ``corpus`` fixture (``tests/conftest.py``) skips what needs it, or fails it
under ``CI=true``, where the corpus is always present.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "JOBSITE_CORPUS"
DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
# The folders the tests and benchmarks read; a corpus without one of them is incomplete.
FOLDERS = ("pdf", "office", "bad", "web", "ground_truth", "audio", "video")


def corpus_dir() -> Path:
    """The corpus folder: ``$JOBSITE_CORPUS``, else ``../shared/corpus`` from the project."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser().resolve() if value else DEFAULT


def corpus_problem(path: Path | None = None) -> str | None:
    """Why the corpus cannot be used, in one line that says how to point at it; None if
    it is there with every folder the tests read."""
    path = path or corpus_dir()
    how = f"set {ENV} to the corpus folder (see README)"
    if not path.is_dir():
        return f"corpus not found at {path}: {how}"
    missing = [name for name in FOLDERS if not (path / name).is_dir()]
    if missing:
        return f"corpus at {path} lacks {', '.join(f'{name}/' for name in missing)}: {how}"
    return None


def require_corpus() -> Path:
    """The corpus folder, or exit with the reason (for benchmarks run as scripts)."""
    problem = corpus_problem()
    if problem:
        raise SystemExit(problem)
    return corpus_dir()
