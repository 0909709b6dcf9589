"""PDF extraction (``processing.documents.pdf``). Each behaviour on PDFs made here
(``tests/documents.py``): known text on known pages, headings, two columns, running headers
and footers, hyphenation, OCR of a scanned page, and the files that must fail cleanly. Then
the real-world layer, through the ``corpus`` fixture: every corpus PDF, its bad files, the
GeoTopo quality target and layout, and OCR of its image-only page. No database: these call
``read`` directly."""

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
from processing.documents.pdf import glyphs, layout, ocr
from tests import documents
from tests.documents import Sample

pytestmark = pytest.mark.services_free

BOOK = "pdf/GeoTopo-komprimiert.pdf"
IMAGE_ONLY = "pdf/base64image.pdf"
NO_OCR = Limits(ocr=False)
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None and os.environ.get("CI", "").lower() != "true",
    reason="Tesseract is not installed (apt install tesseract-ocr)",
)


def read_all(path: Path, limits: Limits = NO_OCR) -> list[Unit]:
    return list(pdf.read(path, limits).units)


def full_text(units: list[Unit]) -> str:
    return "\n\n".join(unit.text() for unit in units)


def page(units: list[Unit], number: int) -> list[Block]:
    return next(unit.blocks for unit in units if unit.number == number)


def body_blocks(units: list[Unit]) -> list[Block]:
    return [b for unit in units for b in unit.blocks if b.kind not in ("header", "footer")]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pdf")


@pytest.fixture(scope="module")
def report(made: Path) -> Sample:
    return documents.pdf_report(made)


@pytest.fixture(scope="module")
def report_units(report: Sample) -> list[Unit]:
    return read_all(report.path)


@pytest.fixture(scope="module")
def scanned(made: Path) -> Sample:
    return documents.pdf_scanned(made)


@pytest.fixture(scope="module")
def book(corpus: Path) -> list[Unit]:
    return read_all(corpus / BOOK)


# --- a report made here: pages, headings, columns, running headers ----------------------------


def test_known_text_on_known_pages(report: Sample, report_units: list[Unit]) -> None:
    document = pdf.read(report.path, NO_OCR)
    assert document.format == "pdf"
    assert document.title == documents.PDF_TITLE
    assert document.unit_count == documents.PDF_PAGES == len(report_units)
    assert [unit.number for unit in report_units] == [1, 2, 3, 4]
    assert {unit.kind for unit in report_units} == {"page"}
    flat = {unit.number: " ".join(unit.text().split()) for unit in report_units}
    for number, phrases in report.pages.items():
        for phrase in phrases:
            where = [n for n, text in flat.items() if phrase in text]
            assert where == [number], phrase
    for phrase in report.text:
        assert phrase in full_text(report_units)


def test_headings_by_size(report_units: list[Unit]) -> None:
    def headings(number: int) -> list[tuple[str, int]]:
        return [(b.text, b.level) for b in page(report_units, number) if b.kind == "heading"]

    assert headings(1) == [("Rivers of the North", 1), ("Mountains", 2)]
    assert headings(2) == [("Lakes and Quarries", 1)]
    assert headings(3) == headings(4) == []


def test_running_header_and_footer_are_set_apart(report_units: list[Unit]) -> None:
    """Repeated at the same edge of neighbouring pages: each becomes a block of its own
    (chunking leaves them out of memories), never part of the body."""
    for unit in report_units:
        assert unit.blocks[0] == Block(documents.PDF_HEADER, kind="header")
        assert unit.blocks[-1] == Block(documents.pdf_footer(unit.number), kind="footer")
    body = " ".join(b.text for b in body_blocks(report_units))
    assert documents.PDF_HEADER not in body
    assert "Printed for the archive" not in body


def test_two_columns_read_left_then_right(report: Sample, report_units: list[Unit]) -> None:
    # The file really has two columns: the paragraph starts top left and ends bottom right.
    document = pdfium.PdfDocument(report.path)
    try:
        textpage = document[2].get_textpage()
        width = document[2].get_width()
        first = textpage.search("Crossing sentence 0 ").get_next()
        last = textpage.search("Crossing sentence 59 ").get_next()
        assert textpage.get_charbox(first[0])[0] < width / 2 < textpage.get_charbox(last[0])[0]
    finally:
        document.close()
    texts = [b.text for b in page(report_units, 3) if b.kind == "paragraph"]
    assert texts[0] == "The left column begins with the western\nshore."
    # One paragraph, though it runs from the foot of the left column to the top of the right.
    assert " ".join(texts[1].split()) == documents.PDF_CROSSING
    assert texts[2] == "The right column ends with the eastern\nshore."


def test_words_hyphenated_at_line_ends_are_joined(report_units: list[Unit]) -> None:
    assert Block(documents.PDF_HYPHENATED) in page(report_units, 4)


def test_text_page_with_a_picture_is_not_sent_to_ocr(report: Sample) -> None:
    document = pdfium.PdfDocument(report.path)
    try:
        assert ocr.image_share(document[1]) >= ocr.OCR_MIN_IMAGE_SHARE  # page 2's picture
    finally:
        document.close()
    document = pdf.read(report.path, Limits())
    assert [unit.ocr for unit in document.units] == [False] * documents.PDF_PAGES
    assert document.warnings == []


def test_character_limit(report: Sample) -> None:
    units = pdf.read(report.path, Limits(max_characters=500)).units
    with pytest.raises(DocumentError) as caught:
        list(units)
    assert caught.value.code == "too_many_characters"
    assert "500 characters" in caught.value.message


def test_closing_the_units_closes_the_pdf(report: Sample) -> None:
    units = pdf.read(report.path, NO_OCR).units
    next(units)
    opened = units.gi_frame.f_locals["pdf"]
    units.close()
    assert opened.raw is None


def test_pdf_without_pages(tmp_path: Path) -> None:
    path = tmp_path / "zero.pdf"
    pdfium.PdfDocument.new().save(path)
    with pytest.raises(DocumentError) as caught:
        pdf.read(path, Limits())
    assert caught.value.code == "pdf_no_pages"


def test_text_cleaning() -> None:
    assert glyphs.clean("ﬁnd the ﬂow, eﬀect") == "find the flow, effect"
    assert glyphs.clean("f1, . . . , fr and X˜") == "f1, ... , fr and X̃"

    def joined(*texts: str) -> str:
        return layout.paragraph_text([layout.Line(text, 0, 0, 0, 10, False) for text in texts])

    assert joined("die Topo-", "logie ist") == "die Topologie\nist"
    assert joined("die E-", "Mail kam") == "die E-Mail\nkam"
    assert joined("Ein-", "und Ausgabe") == "Ein-\nund Ausgabe"


# --- files that must fail cleanly, made here and from the corpus ------------------------------

# Builder in tests/documents.py: (the corpus's file, error code, words of pdf.read's message).
BAD = {
    "encrypted-pdf": (
        "pdf/libreoffice-writer-password.pdf",
        "pdf_encrypted",
        "encrypted (password",
    ),
    "truncated-pdf": ("bad/truncated.pdf", "pdf_corrupt", "truncated"),
    "empty": ("bad/empty.pdf", "empty_file", "empty (0 bytes)"),
    "png-named-pdf": ("bad/image-named.pdf", "not_a_pdf", "PNG image"),
    "too-many-pages": (
        "bad/twenty-thousand-blank-pages.pdf",
        "too_many_pages",
        "pages; the limit is 2,000",
    ),
}


def bad_file(request: pytest.FixtureRequest, case: str, source: str, folder: Path) -> Path:
    if source == "corpus":
        return request.getfixturevalue("corpus") / BAD[case][0]
    return documents.BAD[case](folder).path


@pytest.mark.parametrize("source", ["made", "corpus"])
@pytest.mark.parametrize("case", BAD)
def test_bad_file_fails_on_open_with_a_specific_error(
    request: pytest.FixtureRequest, case: str, source: str, tmp_path: Path
) -> None:
    path = bad_file(request, case, source, tmp_path)
    _, code, words = BAD[case]
    started = time.monotonic()
    with pytest.raises(DocumentError) as caught:
        pdf.read(path, Limits())
    assert caught.value.code == code
    assert words in caught.value.message
    assert time.monotonic() - started < 2


def test_page_limit_names_count_and_limit(tmp_path: Path) -> None:
    made = documents.pdf_blank_pages(tmp_path)
    with pytest.raises(DocumentError, match=r"^PDF has 2,001 pages; the limit is 2,000$"):
        pdf.read(made.path, Limits())
    document = pdf.read(made.path, Limits(max_pages=2_001))  # at the limit: opens
    assert document.unit_count == 2_001
    document.units.close()


def test_corpus_page_limit_names_count_and_limit(corpus: Path) -> None:
    with pytest.raises(DocumentError, match=r"20,000 pages; the limit is 2,000"):
        pdf.read(corpus / "bad" / "twenty-thousand-blank-pages.pdf", Limits())


@pytest.mark.parametrize("source", ["made", "corpus"])
def test_blank_pages_read_lazily_then_fail_for_want_of_text(
    request: pytest.FixtureRequest, source: str, tmp_path: Path
) -> None:
    path = bad_file(request, "too-many-pages", source, tmp_path)
    document = pdf.read(path, Limits(max_pages=100_000))
    first = next(document.units)
    assert first.number == 1
    assert first.blocks == []
    with pytest.raises(DocumentError) as caught:
        for _ in document.units:
            pass
    assert caught.value.code == "pdf_no_text"
    assert "no text" in caught.value.message


# --- OCR, on a scan made here and on the corpus's image-only page ----------------------------


@needs_tesseract
def test_scanned_page_is_read_by_ocr(scanned: Sample) -> None:
    document = pdf.read(scanned.path, Limits())
    units = list(document.units)
    assert [unit.ocr for unit in units] == [True]
    text = units[0].text()
    for phrase in (*scanned.text, *scanned.pages[1]):
        assert phrase in text
    assert document.warnings == []


def image_only(request: pytest.FixtureRequest, source: str) -> Path:
    if source == "corpus":
        return request.getfixturevalue("corpus") / IMAGE_ONLY
    return request.getfixturevalue("scanned").path


@pytest.mark.parametrize("source", ["made", "corpus"])
def test_without_tesseract_the_page_comes_with_a_warning(
    request: pytest.FixtureRequest, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = image_only(request, source)
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    document = pdf.read(path, Limits())
    first = next(document.units)  # the scan made here has nothing else: the end fails
    assert first.ocr is False
    assert document.warnings == ["Tesseract is not installed: scanned pages were left without text"]


def test_a_scan_without_ocr_has_no_text(scanned: Sample) -> None:
    document = pdf.read(scanned.path, NO_OCR)
    with pytest.raises(DocumentError) as caught:
        list(document.units)
    assert caught.value.code == "pdf_no_text"
    assert caught.value.message == (
        "PDF contains no text (OCR is turned off: scanned pages were left without text)"
    )
    assert document.warnings == ["OCR is turned off: scanned pages were left without text"]


# --- the corpus: every PDF, GeoTopo's quality and layout --------------------------------------


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


def test_every_corpus_pdf_has_a_phrase(corpus: Path) -> None:
    encrypted = {"libreoffice-writer-password.pdf"}
    assert {p.name for p in (corpus / "pdf").glob("*.pdf")} - encrypted == set(CORPUS_PHRASES)


@pytest.mark.parametrize(("name", "phrase"), CORPUS_PHRASES.items())
def test_corpus_pdf_yields_known_text(corpus: Path, name: str, phrase: str) -> None:
    document = pdf.read(corpus / "pdf" / name, NO_OCR)
    units = list(document.units)
    assert document.format == "pdf"
    assert document.unit_count == len(units)
    assert [unit.number for unit in units] == list(range(1, len(units) + 1))
    assert all(unit.kind == "page" for unit in units)
    assert phrase in full_text(units)


def test_corpus_character_limit(corpus: Path) -> None:
    units = pdf.read(corpus / BOOK, Limits(max_characters=5_000)).units
    with pytest.raises(DocumentError) as caught:
        list(units)
    assert caught.value.code == "too_many_characters"
    assert "5,000 characters" in caught.value.message


def test_geotopo_quality(corpus: Path, book: list[Unit]) -> None:
    """The corpus README's measure against the hand-checked text (raw PDFium: 0.945)."""
    truth = (corpus / "ground_truth" / "GeoTopo-book.txt").read_text(encoding="utf-8")
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


def test_corpus_running_headers_and_page_numbers(corpus: Path, book: list[Unit]) -> None:
    seventh = page(book, 7)
    assert seventh[0] == Block("4 1.1. TOPOLOGISCHE RÄUME", kind="header")
    assert not any("TOPOLOGISCHE RÄUME" in b.text for b in body_blocks(book))
    columns = read_all(corpus / "pdf" / "multicolumn.pdf")
    assert [unit.blocks[-1] for unit in columns] == [
        Block(str(unit.number), kind="footer") for unit in columns
    ]


def test_corpus_two_columns_read_in_order(corpus: Path) -> None:
    units = read_all(corpus / "pdf" / "multicolumn.pdf")
    text = units[0].text()
    assert (
        text.index("Abstract")
        < text.index("Lorem ipsum dolor sit amet")
        < text.index("Fusce mauris.")
    )
    # A sentence that runs from the bottom of the left column to the top of the right one.
    assert "Donec nonummy\npellentesque ante." in text


@needs_tesseract
def test_corpus_image_only_page_is_read_by_ocr(corpus: Path) -> None:
    document = pdf.read(corpus / IMAGE_ONLY, Limits())
    units = list(document.units)
    assert units[0].ocr is True
    text = units[0].text().lower()
    assert "assign it to yourself" in text
    assert "close it" in text
    assert document.warnings == []


def test_corpus_ocr_turned_off(corpus: Path) -> None:
    document = pdf.read(corpus / IMAGE_ONLY, NO_OCR)
    assert not any(unit.ocr for unit in document.units)
    assert document.warnings == ["OCR is turned off: scanned pages were left without text"]


def test_corpus_text_pages_are_not_sent_to_ocr(corpus: Path) -> None:
    units = read_all(corpus / "pdf" / "pdflatex-image.pdf", Limits())
    assert [unit.ocr for unit in units] == [False]
