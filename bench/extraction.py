"""PDF extraction quality and speed on the GeoTopo book, beside PDFium's raw text.

Quality is the corpus README's measure: ``rapidfuzz.fuzz.ratio`` of the whole text
against the hand-checked reference, divided by 100. Times are the best of three runs.

    python -m bench.extraction
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pypdfium2 as pdfium
from rapidfuzz import fuzz

from processing.documents import pdf
from processing.documents.base import Limits
from tests.corpus import require_corpus

BOOK = "pdf/GeoTopo-komprimiert.pdf"
TRUTH = "ground_truth/GeoTopo-book.txt"


def book_and_truth() -> tuple[Path, Path]:
    """The GeoTopo book and its hand-checked text from the corpus (``JOBSITE_CORPUS``);
    exits with the reason where the corpus is absent."""
    corpus = require_corpus()
    return corpus / BOOK, corpus / TRUTH


def raw_text(path: Path) -> str:
    """PDFium's text as it comes, page after page: the baseline."""
    document = pdfium.PdfDocument(path)
    pages = []
    try:
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            pages.append(textpage.get_text_range())
            textpage.close()
            page.close()
    finally:
        document.close()
    return "\n\n".join(pages)


def our_text(path: Path, *, body_only: bool = False) -> str:
    units = pdf.read(path, Limits()).units
    if not body_only:
        return "\n\n".join(unit.text() for unit in units)
    skip = ("header", "footer")
    return "\n\n".join(
        "\n\n".join(b.text for b in unit.blocks if b.text and b.kind not in skip) for unit in units
    )


def best_of(run: Callable[[], object], times: int = 3) -> float:
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        durations.append(time.perf_counter() - started)
    return round(min(durations), 3)


def measure() -> dict[str, float]:
    book, truth_path = book_and_truth()
    truth = truth_path.read_text(encoding="utf-8")
    raw = raw_text(book)

    def score(text: str) -> float:
        return round(fuzz.ratio(text, truth) / 100, 4)

    return {
        "raw pypdfium2": score(raw),
        "raw, CRLF -> LF": score(raw.replace("\r\n", "\n").replace("\r", "\n")),
        "ours": score(our_text(book)),
        "ours without header/footer blocks": score(our_text(book, body_only=True)),
        "raw seconds": best_of(lambda: raw_text(book)),
        "ours seconds": best_of(lambda: our_text(book)),
    }


def main() -> None:
    book, truth = book_and_truth()
    print(f"{book.name} against {truth.name}")
    for name, value in measure().items():
        print(f"  {name:<36} {value}")


if __name__ == "__main__":
    main()
