"""PDF extraction (``processing.documents.pdf``): every corpus PDF, the files that must fail
cleanly, the GeoTopo quality target, layout (headings, paragraphs, running headers) and
OCR of the image-only page. No database: these call ``read`` directly."""

# The expected texts hold math symbols and typographic dashes on purpose.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from rapidfuzz import fuzz

from processing.documents import pdf
from processing.documents.base import Block, DocumentError, Limits, Unit

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
PDFS = CORPUS / "pdf"
BAD = CORPUS / "bad"
BOOK = PDFS / "GeoTopo-komprimiert.pdf"
NO_OCR = Limits(ocr=False)


def read_all(path: Path, limits: Limits = NO_OCR) -> list[Unit]:
    return list(pdf.read(path, limits).units)


def full_text(units: list[Unit]) -> str:
    return "\n\n".join(unit.text() for unit in units)


def page(units: list[Unit], number: int) -> list[Block]:
    return next(unit.blocks for unit in units if unit.number == number)


@pytest.fixture(scope="module")
def book() -> list[Unit]:
    return read_all(BOOK)


# --- every corpus file ----------------------------------------------------------------------


# A phrase checked by hand in each corpus PDF (base64image.pdf without OCR: its text layer
# holds only the annotator's stamp).
CORPUS_PHRASES = {
    "002-trivial-libre-office-writer.pdf": "consetetur sadipscing elitr, sed diam nonumy",
    "GeoTopo-komprimiert.pdf": "Ein topologischer Raum ist ein Paar",
    "base64image.pdf": "Produced with a Trial Version of PDF Annotator",
    "crazyones-pdfa.pdf": "The round pegs in the square holes.",
    "google-doc-document.pdf": "Beautiful is better than ugly.",
    "habibi.pdf": "habibi",
    "minimal-document.pdf": "Stet clita kasd gubergren",
    "multicolumn.pdf": "Czech Republic 10.7 78,866 Prague Czech",
    "pdflatex-4-pages.pdf": "“Huardest gefburn”? Kjift – not at all!",
    "pdflatex-forms.pdf": "Submit",
    "pdflatex-image.pdf": "Stet clita kasd gubergren, no sea takimata sanctus est",
    "pdflatex-outline.pdf": "This text should contain all letters of the",
}


def test_every_corpus_pdf_has_a_phrase() -> None:
    encrypted = {"libreoffice-writer-password.pdf"}
    assert {p.name for p in PDFS.glob("*.pdf")} - encrypted == set(CORPUS_PHRASES)


@pytest.mark.parametrize(("name", "phrase"), CORPUS_PHRASES.items())
def test_corpus_pdf_yields_known_text(name: str, phrase: str) -> None:
    document = pdf.read(PDFS / name, NO_OCR)
    units = list(document.units)
    assert document.format == "pdf"
    assert document.unit_count == len(units)
    assert [unit.number for unit in units] == list(range(1, len(units) + 1))
    assert all(unit.kind == "page" for unit in units)
    assert phrase in full_text(units)


# --- files that must fail cleanly -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        (PDFS / "libreoffice-writer-password.pdf", "pdf_encrypted", "encrypted (password"),
        (BAD / "truncated.pdf", "pdf_corrupt", "truncated"),
        (BAD / "empty.pdf", "empty_file", "empty (0 bytes)"),
        (BAD / "image-named.pdf", "not_a_pdf", "PNG image"),
        (BAD / "twenty-thousand-blank-pages.pdf", "too_many_pages", "20,000 pages"),
    ],
)
def test_bad_file_fails_on_open_with_a_specific_error(path: Path, code: str, words: str) -> None:
    started = time.monotonic()
    with pytest.raises(DocumentError) as caught:
        pdf.read(path, Limits())
    assert caught.value.code == code
    assert words in caught.value.message
    assert time.monotonic() - started < 2


def test_page_limit_names_count_and_limit() -> None:
    with pytest.raises(DocumentError, match=r"20,000 pages; the limit is 2,000"):
        pdf.read(BAD / "twenty-thousand-blank-pages.pdf", Limits())


def test_blank_pages_read_lazily_then_fail_for_want_of_text() -> None:
    document = pdf.read(BAD / "twenty-thousand-blank-pages.pdf", Limits(max_pages=100_000))
    first = next(document.units)
    assert first.number == 1
    assert first.blocks == []
    with pytest.raises(DocumentError) as caught:
        for _ in document.units:
            pass
    assert caught.value.code == "pdf_no_text"
    assert "no text" in caught.value.message


def test_pdf_without_pages(tmp_path: Path) -> None:
    path = tmp_path / "zero.pdf"
    pdfium.PdfDocument.new().save(path)
    with pytest.raises(DocumentError) as caught:
        pdf.read(path, Limits())
    assert caught.value.code == "pdf_no_pages"


def test_character_limit() -> None:
    units = pdf.read(BOOK, Limits(max_characters=5_000)).units
    with pytest.raises(DocumentError) as caught:
        list(units)
    assert caught.value.code == "too_many_characters"
    assert "5,000 characters" in caught.value.message


def test_closing_the_units_closes_the_pdf() -> None:
    units = pdf.read(BOOK, NO_OCR).units
    next(units)
    opened = units.gi_frame.f_locals["pdf"]
    units.close()
    assert opened.raw is None


# --- quality and layout ---------------------------------------------------------------------


def test_geotopo_quality(book: list[Unit]) -> None:
    """The corpus README's measure against the hand-checked text (raw PDFium: 0.945)."""
    truth = (CORPUS / "ground_truth" / "GeoTopo-book.txt").read_text(encoding="utf-8")
    assert fuzz.ratio(full_text(book), truth) / 100 >= 0.98


def test_headings_and_paragraphs(book: list[Unit]) -> None:
    blocks = page(book, 6)
    headings = [(b.text, b.level) for b in blocks if b.kind == "heading"]
    assert headings[:2] == [("1 Topologische Grundbegriffe", 1), ("1.1 Topologische Räume", 2)]
    foreword = [b.text for b in page(book, 2)]
    assert foreword[:2] == [
        "Vorwort",
        "Dieses Skript wurde im Wintersemester 2013/2014 von Martin Thoma geschrieben. Es "
        "beinhaltet\ndie Mitschriften aus der Vorlesung von Prof. Dr. Herrlich sowie die "
        "Mitschriften einiger Übungen\nund Tutorien.",
    ]
    assert "Danksagungen" in foreword


def test_hyphenation_and_exponents(book: list[Unit]) -> None:
    text = page(book, 2)
    joined = "\n".join(b.text for b in text)
    assert "ihre Übungsaufgaben\nund Lösungen" in joined  # a split word is re-joined
    assert "(Schwarz-Weiß," in joined  # a hyphen before a capital stays
    assert "Die Kugeloberfläche S2 lässt sich" in joined  # the exponent back on its line


def test_tex_symbols_are_read_by_font(book: list[Unit]) -> None:
    text = full_text(book)
    end_of_proof = "d. h. X und ∅ sind als Komplement offener Mengen abgeschlossen. ■"
    assert end_of_proof in text
    assert "max(‖x1 − x2‖, ‖y1 − y2‖)" in text  # norm bars, not "kx1 − x2k"
    assert "Seien H′ bzw. H′′" in text  # primes, not "H0 bzw. H00"


def test_running_headers_and_page_numbers_are_set_apart(book: list[Unit]) -> None:
    seventh = page(book, 7)
    assert seventh[0] == Block("4 1.1. TOPOLOGISCHE RÄUME", kind="header")
    body = [b.text for unit in book for b in unit.blocks if b.kind not in ("header", "footer")]
    assert not any("TOPOLOGISCHE RÄUME" in text for text in body)
    columns = read_all(PDFS / "multicolumn.pdf")
    assert [unit.blocks[-1] for unit in columns] == [
        Block(str(unit.number), kind="footer") for unit in columns
    ]


def test_two_columns_read_in_order() -> None:
    units = read_all(PDFS / "multicolumn.pdf")
    text = units[0].text()
    assert (
        text.index("Abstract")
        < text.index("Lorem ipsum dolor sit amet")
        < text.index("Fusce mauris.")
    )
    # A sentence that runs from the bottom of the left column to the top of the right one.
    assert "Donec nonummy\npellentesque ante." in text


def test_text_cleaning() -> None:
    assert pdf._clean("ﬁnd the ﬂow, eﬀect") == "find the flow, effect"
    assert pdf._clean("f1, . . . , fr and X˜") == "f1, ... , fr and X̃"

    def joined(*texts: str) -> str:
        return pdf._paragraph_text([pdf._Line(text, 0, 0, 0, 10, False) for text in texts])

    assert joined("die Topo-", "logie ist") == "die Topologie\nist"
    assert joined("die E-", "Mail kam") == "die E-Mail\nkam"
    assert joined("Ein-", "und Ausgabe") == "Ein-\nund Ausgabe"


# --- OCR ------------------------------------------------------------------------------------


IMAGE_ONLY = PDFS / "base64image.pdf"


@pytest.mark.skipif(
    shutil.which("tesseract") is None and os.environ.get("CI") != "true",
    reason="Tesseract is not installed (apt install tesseract-ocr)",
)
def test_image_only_page_is_read_by_ocr() -> None:
    document = pdf.read(IMAGE_ONLY, Limits())
    units = list(document.units)
    assert units[0].ocr is True
    text = units[0].text().lower()
    assert "assign it to yourself" in text
    assert "close it" in text
    assert document.warnings == []


def test_without_tesseract_the_page_comes_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf.shutil, "which", lambda name: None)
    document = pdf.read(IMAGE_ONLY, Limits())
    units = list(document.units)
    assert units[0].ocr is False
    assert document.warnings == ["Tesseract is not installed: scanned pages were left without text"]


def test_ocr_turned_off() -> None:
    document = pdf.read(IMAGE_ONLY, NO_OCR)
    assert not any(unit.ocr for unit in document.units)
    assert document.warnings == ["OCR is turned off: scanned pages were left without text"]


def test_text_pages_are_not_sent_to_ocr() -> None:
    units = read_all(PDFS / "pdflatex-image.pdf", Limits())
    assert [unit.ocr for unit in units] == [False]
