"""Office extractors (DOCX, PPTX, XLSX, ODT, EPUB): the corpus files and small files built
here for what the corpus lacks (real tables, lists, notes, groups, ODT and EPUB)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import docx as python_docx
import pptx as python_pptx
import pytest
from openpyxl import Workbook
from pptx.util import Inches

from processing.documents import open_document
from processing.documents.base import Block, Document, DocumentError, Limits, Unit

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
OFFICE = CORPUS / "office"


def read_all(path: Path, limits: Limits | None = None) -> tuple[Document, list[Unit]]:
    document = open_document(path, limits or Limits())
    return document, list(document.units)


def blocks(units: list[Unit]) -> list[Block]:
    return [block for unit in units for block in unit.blocks]


def full_text(units: list[Unit]) -> str:
    return "\n\n".join(unit.text() for unit in units)


# --- every corpus file ----------------------------------------------------------------------


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
def test_corpus_file_yields_known_text(name: str, phrases: list[str]) -> None:
    _, units = read_all(OFFICE / name)
    text = full_text(units)
    for phrase in phrases:
        assert phrase in text
    if not phrases:
        assert text == ""


def test_corpus_covers_every_office_file() -> None:
    assert {path.name for path in OFFICE.iterdir()} == set(CORPUS_PHRASES)


def test_docx_headers_and_footers() -> None:
    _, units = read_all(OFFICE / "hdr-header-footer.docx")
    kinds = [(block.kind, block.text) for block in blocks(units)]
    assert kinds == [
        ("header", "Header for section-1"),
        ("paragraph", "section with header"),
        ("paragraph", "section without header of its own."),
        ("footer", "Footer for section 1"),
    ]


def test_docx_comments_follow_their_paragraph_with_author() -> None:
    _, units = read_all(OFFICE / "comments-rich-para.docx")
    texts = [(block.kind, block.text) for block in blocks(units)]
    comments = [text for kind, text in texts if kind == "comment"]
    assert comments[0] == "Steve Canny: Text with hyperlink https://google.com embedded."
    assert "Paragraph with Heading 2 paragraph style." in comments
    note = texts.index(("paragraph", "Some text worthy of note."))
    assert texts[note + 1][0] == "comment"


def test_docx_heading_style() -> None:
    _, units = read_all(OFFICE / "par-known-paragraphs.docx")
    assert blocks(units)[0] == Block("Heading Paragraph", kind="heading", level=1)


def test_docx_empty_tables_make_no_blocks() -> None:
    _, units = read_all(OFFICE / "tbl-having-tables.docx")
    assert units == []


def test_pptx_one_unit_per_slide_with_titles() -> None:
    document, units = read_all(OFFICE / "ph-populated-placeholders.pptx")
    assert document.format == "pptx"
    assert document.unit_count == 9
    assert [unit.number for unit in units] == list(range(1, 10))
    assert {unit.kind for unit in units} == {"slide"}
    assert units[4].blocks == [Block("Title Text", kind="title")]


def test_pptx_charts_of_every_type() -> None:
    document, units = read_all(OFFICE / "cht-chart-type.pptx")
    assert document.unit_count == len(units) == 8
    # Slide 1's 3-D area charts are ones python-pptx's chart API cannot read.
    assert all("Series: Series 1, Series 2" in block.text for block in units[0].blocks)
    assert "Categories: Category 1, Category 2, Category 3, Category 4" in units[1].text()
    # Numeric categories (serial dates) are not words and are left out.
    assert "37261" not in full_text(units)


# --- DOCX built here ------------------------------------------------------------------------


@pytest.fixture
def report_docx(tmp_path: Path) -> Path:
    document = python_docx.Document()
    document.core_properties.title = "Quarterly Report"
    document.add_heading("Quarterly Report", level=0)
    document.add_heading("Summary", level=1)
    intro = document.add_paragraph("Revenue   grew by  the \ufb01fth\ttime.")
    document.add_paragraph("First point", style="List Bullet")
    document.add_paragraph("Nested point", style="List Bullet 2")
    document.add_heading("Details", level=2)
    table = document.add_table(rows=3, cols=3)
    table.cell(0, 0).text = "Name"
    table.cell(0, 1).merge(table.cell(0, 2)).text = "Role and team"
    table.cell(1, 0).merge(table.cell(2, 0)).text = "Ada"
    table.cell(1, 1).text = "Engineer"
    table.cell(1, 2).text = "Core"
    table.cell(2, 1).text = "Reviewer"
    table.cell(2, 2).text = "Docs"
    document.add_paragraph("After the table.")
    document.sections[0].header.paragraphs[0].text = "ACME confidential"
    document.sections[0].footer.paragraphs[0].text = "Printed copies are uncontrolled"
    document.add_comment(intro.runs, text="Check this number", author="Grace")
    second = document.add_section()
    second.header.is_linked_to_previous = False
    second.header.paragraphs[0].text = "ACME confidential"  # the same text: kept once
    document.add_heading("Appendix", level=1)
    document.add_paragraph("Appendix text.")
    path = tmp_path / "report.docx"
    document.save(path)
    return path


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


def test_damaged_docx_part_names_the_format(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    with (
        zipfile.ZipFile(OFFICE / "test.docx") as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                data = data[: len(data) // 2]  # cut mid-element
            target.writestr(info, data)
    with pytest.raises(DocumentError) as info:
        read_all(path)
    assert info.value.message.startswith("DOCX file cannot be opened")
    assert "Traceback" not in info.value.message


def test_macro_enabled_word_file_reads_like_docx(tmp_path: Path) -> None:
    path = tmp_path / "macro.docm"
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    macro = "application/vnd.ms-word.document.macroEnabled.main+xml"
    with (
        zipfile.ZipFile(OFFICE / "test.docx") as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(main.encode(), macro.encode())
            target.writestr(info, data)
    _, units = read_all(path)
    assert "python-docx was here!" in full_text(units)


# --- PPTX built here ------------------------------------------------------------------------


@pytest.fixture
def deck_pptx(tmp_path: Path) -> Path:
    deck = python_pptx.Presentation()
    deck.core_properties.title = "Plans"
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    slide.shapes.title.text = "Roadmap"
    # Added bottom first: reading order must still put the upper box first.
    lower = slide.shapes.add_textbox(Inches(1), Inches(6), Inches(4), Inches(0.5))
    lower.text_frame.text = "Lower box"
    upper = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(0.5))
    upper.text_frame.text = "Upper box"
    group = slide.shapes.add_group_shape()
    grouped = group.shapes.add_textbox(Inches(5), Inches(3), Inches(3), Inches(0.5))
    grouped.text_frame.text = "Grouped text"
    table = slide.shapes.add_table(2, 3, Inches(1), Inches(4), Inches(6), Inches(1)).table
    table.cell(0, 0).merge(table.cell(0, 1))
    table.cell(0, 0).text = "Quarter"
    table.cell(0, 2).text = "Goal"
    table.cell(1, 0).text = "Q1"
    table.cell(1, 1).text = "Q2"
    table.cell(1, 2).text = "Ship"
    slide.notes_slide.notes_text_frame.text = "Remember the demo."
    bullets = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    bullets.shapes.title.text = "Goals"
    frame = bullets.placeholders[1].text_frame
    frame.text = "Grow"
    nested = frame.add_paragraph()
    nested.text = "Twice as fast"
    nested.level = 1
    path = tmp_path / "deck.pptx"
    deck.save(path)
    return path


def test_pptx_reading_order_tables_groups_notes(deck_pptx: Path) -> None:
    document, units = read_all(deck_pptx)
    assert document.title == "Plans"
    assert document.unit_count == 2
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


# --- XLSX built here ------------------------------------------------------------------------


def test_xlsx_sheets_rows_and_chunks(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.title = "Budget"
    sheet.append(["Item", "Cost", "Paid"])
    sheet.append(["Coffee", 3.0, True])
    sheet.append([])
    sheet.append([None, None])
    sheet.append(["Tea", 2.5, None, None])
    book.create_sheet("Empty")
    big = book.create_sheet("Log")
    for number in range(120):
        big.append([f"row {number}", number])
    book.properties.title = "Accounts"
    path = tmp_path / "book.xlsx"
    book.save(path)

    document, units = read_all(path)
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


# --- ODT and EPUB built here ----------------------------------------------------------------

ODT_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/"'
)


def build_odt(path: Path, body: str) -> Path:
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODT_NS} '
        f'office:version="1.2"><office:body><office:text>{body}</office:text></office:body>'
        "</office:document-content>"
    )
    meta = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-meta {ODT_NS}><office:meta>'
        "<dc:title>Field Notes</dc:title></office:meta></office:document-meta>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text"
        )  # stored, first: that is how ODF is recognised
        archive.writestr("content.xml", content)
        archive.writestr("meta.xml", meta)
    return path


def test_odt(tmp_path: Path) -> None:
    body = (
        '<text:h text:outline-level="1">Field Notes</text:h>'
        '<text:p>Birds<text:s text:c="3"/>seen<text:tab/>today'
        "<text:note><text:note-body><text:p>a footnote</text:p></text:note-body></text:note>"
        "<office:annotation><dc:creator>Ann</dc:creator><text:p>Really?</text:p>"
        "</office:annotation>.</text:p>"
        '<text:h text:outline-level="2">Species</text:h>'
        "<text:list><text:list-item><text:p>Robin</text:p><text:list><text:list-item>"
        "<text:p>European</text:p></text:list-item></text:list></text:list-item></text:list>"
        "<text:section><table:table><table:table-row><table:table-cell><text:p>Bird</text:p>"
        '</table:table-cell><table:table-cell table:number-columns-repeated="1000"/>'
        '</table:table-row><table:table-row table:number-rows-repeated="2">'
        "<table:table-cell><text:p>Wren</text:p></table:table-cell><table:covered-table-cell/>"
        "</table:table-row></table:table></text:section>"
    )
    path = build_odt(tmp_path / "notes.odt", body)
    document, units = read_all(path)
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
    build_odt(path, "<text:p>x</text:p>")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("styles.xml", '<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    with pytest.raises(DocumentError) as info:
        read_all(path)
    assert info.value.code == "xml_entities"


def build_epub(path: Path, chapters: dict[str, str], spine: list[str]) -> Path:
    manifest = "".join(
        f'<item id="{name}" href="{name}.xhtml" media-type="application/xhtml+xml"/>'
        for name in chapters
    )
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>A Small Book</dc:title>'
        f'</metadata><manifest>{manifest}<item id="css" href="style.css" media-type="text/css"/>'
        "</manifest><spine>"
        + "".join(f'<itemref idref="{name}"/>' for name in spine)
        + "</spine></package>"
    )
    container = (
        '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        archive.writestr("META-INF/container.xml", container)
        archive.writestr("OEBPS/content.opf", opf)
        archive.writestr("OEBPS/style.css", "p { margin: 0 }")
        for name, body in chapters.items():
            archive.writestr(
                f"OEBPS/{name}.xhtml",
                '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE html>'
                '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head>'
                f"<body>{body}</body></html>",
            )
    return path


def test_epub_spine_order(tmp_path: Path) -> None:
    chapters = {
        "two": "<h1>Chapter Two</h1><p>The end&#160;came.</p>",
        "one": "<h1>Chapter One</h1><p>It began.</p><ul><li>a list</li></ul>",
        "cover": "",
    }
    path = build_epub(tmp_path / "book.epub", chapters, spine=["cover", "one", "two"])
    document, units = read_all(path)
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


def test_copy_of_corpus_file_named_wrong_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "slides.pdf"
    shutil.copy(OFFICE / "test.docx", path)
    document, units = read_all(path)
    assert document.format == "docx"
    assert "python-docx was here!" in full_text(units)
