"""Office extractors (DOCX, PPTX, XLSX, ODT, EPUB). Each behaviour on files made here
(``tests/documents.py``): structure, tables, lists, comments, headers and footers, notes,
groups, charts, sheets, ODT and EPUB. Then the real-world layer, through the ``corpus``
fixture: the python-docx and python-pptx test files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx as python_docx
import pytest

from processing.documents import open_document
from processing.documents.base import Block, Document, DocumentError, Limits, Unit
from tests import documents
from tests.documents import Sample

pytestmark = pytest.mark.services_free


def read_all(path: Path, limits: Limits | None = None) -> tuple[Document, list[Unit]]:
    document = open_document(path, limits or Limits())
    return document, list(document.units)


def blocks(units: list[Unit]) -> list[Block]:
    return [block for unit in units for block in unit.blocks]


def full_text(units: list[Unit]) -> str:
    return "\n\n".join(unit.text() for unit in units)


# --- DOCX made here ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("office")


@pytest.fixture(scope="module")
def report_docx(made: Path) -> Path:
    return documents.docx_report(made).path


def test_docx_structure(report_docx: Path) -> None:
    document, units = read_all(report_docx)
    assert document.format == "docx"
    assert document.title == "Quarterly Report"
    assert document.unit_count is None
    found = [(block.kind, block.level, block.text) for block in blocks(units)]
    assert found == [
        ("header", 0, "ACME confidential"),
        ("heading", 1, "Quarterly Report"),
        ("heading", 1, "Summary"),
        ("paragraph", 0, "Revenue grew by the fifth time."),
        ("comment", 0, "Grace: Check this number"),
        ("notes", 0, "Measured by the finance team in March."),
        ("list", 0, "- First point\n  - Nested point"),
        ("heading", 2, "Details"),
        ("table", 0, "Name | Role and team\nAda | Engineer | Core\n | Reviewer | Docs"),
        ("paragraph", 0, "After the table."),
        ("heading", 1, "Appendix"),
        ("paragraph", 0, "Appendix text."),
        ("footer", 0, "Printed copies are uncontrolled"),
    ]
    # A top-level heading starts a new section, except right after the title.
    assert [unit.number for unit in units] == [1, 2]
    assert units[1].blocks[0].text == "Appendix"
    assert {unit.kind for unit in units} == {"section"}


def test_docx_long_body_is_split_into_sections(tmp_path: Path) -> None:
    document = python_docx.Document()
    for number in range(120):
        document.add_paragraph(f"Paragraph number {number}.")
    path = tmp_path / "long.docx"
    document.save(path)
    _, units = read_all(path)
    assert [len(unit.blocks) for unit in units] == [50, 50, 20]
    assert [unit.number for unit in units] == [1, 2, 3]


def test_docx_character_limit(tmp_path: Path) -> None:
    document = python_docx.Document()
    for _ in range(200):
        document.add_paragraph("x" * 100)
    path = tmp_path / "big.docx"
    document.save(path)
    opened = open_document(path, Limits(max_characters=10_000))
    with pytest.raises(DocumentError) as info:
        list(opened.units)
    assert info.value.code == "too_many_characters"


def test_docx_footnote_reference_leaves_the_text_clean(report_docx: Path) -> None:
    """The footnote's reference sits in the paragraph's last run: no stray number."""
    _, units = read_all(report_docx)
    assert Block("Revenue grew by the fifth time.") in blocks(units)


def test_docx_footnote_text_follows_the_paragraph_that_cites_it(report_docx: Path) -> None:
    _, units = read_all(report_docx)
    flat = blocks(units)
    [note] = [block for block in flat if block.kind == "notes"]
    assert note.text == documents.FOOTNOTE_TEXT  # Word's separator notes are not text
    cited = next(i for i, block in enumerate(flat) if block.text.startswith("Revenue grew"))
    # Right after its paragraph and the comment anchored there, before the list.
    assert flat.index(note) == cited + 2 and flat[cited + 1].kind == "comment"


def test_docx_empty_tables_make_no_blocks(made: Path) -> None:
    _, units = read_all(documents.docx_empty_tables(made).path)
    assert units == []


def rewritten(source: Path, target: Path, change: dict[str, tuple[bytes, bytes] | None]) -> Path:
    """A copy of a ZIP-based document with one member's bytes replaced (or cut in half)."""
    with (
        zipfile.ZipFile(source) as original,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy,
    ):
        for info in original.infolist():
            data = original.read(info)
            if info.filename in change:
                swap = change[info.filename]
                data = data[: len(data) // 2] if swap is None else data.replace(*swap)
            copy.writestr(info, data)
    return target


def test_damaged_docx_part_names_the_format(report_docx: Path, tmp_path: Path) -> None:
    path = rewritten(report_docx, tmp_path / "broken.docx", {"word/document.xml": None})
    with pytest.raises(DocumentError) as info:
        read_all(path)
    assert info.value.message.startswith("DOCX file cannot be opened")
    assert "Traceback" not in info.value.message


def test_macro_enabled_word_file_reads_like_docx(report_docx: Path, tmp_path: Path) -> None:
    main = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    macro = b"application/vnd.ms-word.document.macroEnabled.main+xml"
    path = rewritten(report_docx, tmp_path / "macro.docm", {"[Content_Types].xml": (main, macro)})
    _, units = read_all(path)
    assert "Revenue grew by the fifth time." in full_text(units)


def test_docx_named_wrong_still_reads(report_docx: Path, tmp_path: Path) -> None:
    path = tmp_path / "slides.pdf"
    path.write_bytes(report_docx.read_bytes())
    document, units = read_all(path)
    assert document.format == "docx"
    assert "Revenue grew by the fifth time." in full_text(units)


# --- PPTX made here -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deck(made: Path) -> Sample:
    return documents.pptx_deck(made)


def test_pptx_reading_order_tables_groups_notes(deck: Sample) -> None:
    document, units = read_all(deck.path)
    assert document.format == "pptx"
    assert document.title == "Plans"
    assert document.unit_count == 3
    assert [(unit.number, unit.kind) for unit in units] == [
        (1, "slide"),
        (2, "slide"),
        (3, "slide"),
    ]
    first = [(block.kind, block.text) for block in units[0].blocks]
    assert first == [
        ("title", "Roadmap"),
        ("paragraph", "Upper box"),
        ("paragraph", "Grouped text"),
        ("table", "Quarter | Goal\nQ1 | Q2 | Ship"),
        ("paragraph", "Lower box"),
        ("notes", "Remember the demo."),
    ]
    second = [(block.kind, block.text) for block in units[1].blocks]
    assert second == [("title", "Goals"), ("list", "- Grow\n  - Twice as fast")]


def test_pptx_chart_title_series_and_categories(deck: Sample) -> None:
    _, units = read_all(deck.path)
    assert units[2].blocks == [
        Block("Sales", kind="title"),
        Block("Chart: Revenue by region\nSeries: Revenue, Costs\nCategories: North, South, East"),
    ]


# --- XLSX made here -------------------------------------------------------------------------


def test_xlsx_sheets_rows_and_chunks(made: Path) -> None:
    document, units = read_all(documents.xlsx_book(made).path)
    assert document.format == "xlsx"
    assert document.title == "Accounts"
    assert document.unit_count == 3
    assert [(unit.number, unit.kind) for unit in units] == [
        (1, "sheet"),
        (2, "sheet"),
        (3, "sheet"),
    ]
    assert units[0].blocks == [
        Block("Budget", kind="heading", level=1),
        Block("Item | Cost | Paid\nCoffee | 3 | TRUE\nTea | 2.5", kind="table"),
    ]
    assert units[1].blocks == [Block("Empty", kind="heading", level=1)]
    tables = [block for block in units[2].blocks if block.kind == "table"]
    assert [block.text.count("\n") + 1 for block in tables] == [50, 50, 20]
    assert tables[2].text.endswith("row 119 | 119")


# --- ODT and EPUB made here -----------------------------------------------------------------


def test_odt(made: Path) -> None:
    document, units = read_all(documents.odt_notes(made).path)
    assert document.format == "odt"
    assert document.title == "Field Notes"
    assert [(block.kind, block.level, block.text) for block in blocks(units)] == [
        ("heading", 1, "Field Notes"),
        ("paragraph", 0, "Birds seen today."),
        ("comment", 0, "Ann: Really?"),
        ("heading", 2, "Species"),
        ("list", 0, "- Robin\n  - European"),
        ("table", 0, "Bird\nWren"),
    ]


def test_odt_with_entities_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.odt"
    documents.build_odt(path, "<text:p>x</text:p>")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("styles.xml", '<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    with pytest.raises(DocumentError) as info:
        read_all(path)
    assert info.value.code == "xml_entities"


def test_epub_spine_order(made: Path) -> None:
    document, units = read_all(documents.epub_book(made).path)
    assert document.format == "epub"
    assert document.title == "A Small Book"
    assert document.unit_count == 3
    assert [(unit.number, unit.kind) for unit in units] == [
        (1, "section"),
        (2, "section"),
        (3, "section"),
    ]
    assert units[0].blocks == []
    assert units[1].blocks == [
        Block("Chapter One", kind="heading", level=1),
        Block("It began."),
        Block("- a list", kind="list"),
    ]
    assert units[2].text() == "Chapter Two\n\nThe end came."


# --- the corpus: real python-docx and python-pptx files ------------------------------------


# A phrase checked by hand in each corpus file.
CORPUS_PHRASES = {
    "comments-rich-para.docx": ["Some text worthy of note.", "Other document text."],
    "hdr-header-footer.docx": ["section with header", "Header for section-1"],
    "par-known-paragraphs.docx": ["Heading Paragraph", "Normal paragraph"],
    "test.docx": ["python-docx was here!", "python-docx was here too!"],
    "cht-chart-type.pptx": ["Series 1", "Category 1", "1st Qtr", "Sales"],
    "ph-populated-placeholders.pptx": ["Title Text", "Content", "Body text"],
    # These two hold no text at all (three empty tables; five images without alt text):
    # they must open cleanly and yield nothing.
    "tbl-having-tables.docx": [],
    "having-images.docx": [],
}


@pytest.mark.parametrize(("name", "phrases"), CORPUS_PHRASES.items())
def test_corpus_file_yields_known_text(corpus: Path, name: str, phrases: list[str]) -> None:
    _, units = read_all(corpus / "office" / name)
    text = full_text(units)
    for phrase in phrases:
        assert phrase in text
    if not phrases:
        assert text == ""


def test_corpus_covers_every_office_file(corpus: Path) -> None:
    assert {path.name for path in (corpus / "office").iterdir()} == set(CORPUS_PHRASES)


def test_corpus_docx_headers_and_footers(corpus: Path) -> None:
    _, units = read_all(corpus / "office" / "hdr-header-footer.docx")
    kinds = [(block.kind, block.text) for block in blocks(units)]
    assert kinds == [
        ("header", "Header for section-1"),
        ("paragraph", "section with header"),
        ("paragraph", "section without header of its own."),
        ("footer", "Footer for section 1"),
    ]


def test_corpus_docx_comments_follow_their_paragraph_with_author(corpus: Path) -> None:
    _, units = read_all(corpus / "office" / "comments-rich-para.docx")
    texts = [(block.kind, block.text) for block in blocks(units)]
    comments = [text for kind, text in texts if kind == "comment"]
    assert comments[0] == "Steve Canny: Text with hyperlink https://google.com embedded."
    assert "Paragraph with Heading 2 paragraph style." in comments
    note = texts.index(("paragraph", "Some text worthy of note."))
    assert texts[note + 1][0] == "comment"


def test_corpus_docx_heading_style(corpus: Path) -> None:
    _, units = read_all(corpus / "office" / "par-known-paragraphs.docx")
    assert blocks(units)[0] == Block("Heading Paragraph", kind="heading", level=1)


def test_corpus_docx_empty_tables_make_no_blocks(corpus: Path) -> None:
    _, units = read_all(corpus / "office" / "tbl-having-tables.docx")
    assert units == []


def test_corpus_pptx_one_unit_per_slide_with_titles(corpus: Path) -> None:
    document, units = read_all(corpus / "office" / "ph-populated-placeholders.pptx")
    assert document.format == "pptx"
    assert document.unit_count == 9
    assert [unit.number for unit in units] == list(range(1, 10))
    assert {unit.kind for unit in units} == {"slide"}
    assert units[4].blocks == [Block("Title Text", kind="title")]


def test_corpus_pptx_charts_of_every_type(corpus: Path) -> None:
    document, units = read_all(corpus / "office" / "cht-chart-type.pptx")
    assert document.unit_count == len(units) == 8
    # Slide 1's 3-D area charts are ones python-pptx's chart API cannot read.
    assert all("Series: Series 1, Series 2" in block.text for block in units[0].blocks)
    assert "Categories: Category 1, Category 2, Category 3, Category 4" in units[1].text()
    # Numeric categories (serial dates) are not words and are left out.
    assert "37261" not in full_text(units)
