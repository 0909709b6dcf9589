"""Documents made for the tests: every supported format, and the bad files that must fail
cleanly, so each behaviour is tested without the real-world corpus (``tests/corpus.py``).

Each builder writes one file into the folder it is given and returns a ``Sample``: the
file's path and what extraction must find in it (or how opening it must fail). They are
fast (well under a second each, the zip bomb included) and small on disk.
"""

from __future__ import annotations

import io
import itertools
import random
import struct
import wave
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docx as python_docx
import pptx as python_pptx
import pypdfium2 as pdfium
from docx.document import Document as WordDocument
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import Part
from docx.oxml import parse_xml
from docx.text.paragraph import Paragraph as WordParagraph
from openpyxl import Workbook
from PIL import Image, ImageDraw, ImageFont
from pptx.chart.data import CategoryChartData
from pptx.enum.chart import XL_CHART_TYPE
from pptx.util import Inches
from reportlab.lib.enums import TA_JUSTIFY
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.pdfgen import canvas
from reportlab.platypus import BaseDocTemplate, Frame, NextPageTemplate, PageBreak, PageTemplate
from reportlab.platypus import Image as PdfImage
from reportlab.platypus import Paragraph as PdfParagraph

from processing.documents.base import Limits


@dataclass(frozen=True)
class Sample:
    """A file made for a test and what it must yield."""

    path: Path
    # Phrases the extracted text must contain, and phrases it must not (boilerplate).
    text: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    # Phrases per page (PDF) or slide, by 1-based number.
    pages: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # For a bad file: the error code and words of the message ``open_document`` fails with.
    fails_with: tuple[str, str] | None = None


# --- PDF ------------------------------------------------------------------------------------

PDF_TITLE = "Field Report"
PDF_HEADER = "Jobsite Field Report"
PDF_PAGES = 4


def pdf_footer(number: int) -> str:
    """The report's footer on page ``number``: the same words on every page but the number."""
    return f"Printed for the archive, page {number} of {PDF_PAGES}"


# A paragraph long enough to run from the bottom of page 3's left column into its right one.
_PLACES = ("river", "stone", "meadow", "lantern", "harbour", "orchard", "quarry", "valley")
PDF_CROSSING = " ".join(
    f"Crossing sentence {n} tells of the {_PLACES[n % 8]} and the {_PLACES[n * 3 % 8]}."
    for n in range(60)
)
PDF_HYPHENATED = "We mapped the topography\nand sent an E-Mail\nto the office."


def pdf_report(folder: Path) -> Sample:
    """Four A4 pages: headings, known text on each page, a picture beside text on page 2,
    page 3 in two columns with a paragraph running from the left column into the right,
    words hyphenated at line ends on page 4, and on every page a running header and a
    footer with the page number (the extractor sets both apart as their own blocks)."""
    width, height = A4
    margin = 2.5 * cm

    def running_lines(pdf: canvas.Canvas, doc: BaseDocTemplate) -> None:
        pdf.saveState()
        pdf.setFont("Helvetica", 9)
        pdf.drawString(margin, height - 1.5 * cm, PDF_HEADER)
        pdf.drawCentredString(width / 2, 1.2 * cm, pdf_footer(doc.page))
        pdf.restoreState()

    body = ParagraphStyle("body", fontName="Helvetica", fontSize=11, leading=14, spaceAfter=8)
    justified = ParagraphStyle("justified", parent=body, alignment=TA_JUSTIFY)
    h1 = ParagraphStyle("h1", fontName="Helvetica-Bold", fontSize=20, leading=24, spaceAfter=12)
    h2 = ParagraphStyle("h2", fontName="Helvetica-Bold", fontSize=15, leading=18, spaceAfter=8)
    column = (width - 2 * margin - 1 * cm) / 2
    frames = {
        "one": [Frame(margin, margin, width - 2 * margin, height - 2 * margin)],
        "two": [
            Frame(margin, margin, column, height - 2 * margin),
            Frame(margin + column + 1 * cm, margin, column, height - 2 * margin),
        ],
    }
    path = folder / "report.pdf"
    doc = BaseDocTemplate(str(path), pagesize=A4, title=PDF_TITLE, author="Jobsite tests")
    doc.addPageTemplates(
        [PageTemplate(name, group, onPage=running_lines) for name, group in frames.items()]
    )
    picture = io.BytesIO()
    _picture(600, 400).save(picture, format="PNG")
    picture.seek(0)
    story = [
        PdfParagraph("Rivers of the North", h1),
        PdfParagraph("The first page describes the northern rivers in plain words.", body),
        PdfParagraph("Mountains", h2),
        PdfParagraph("Snow feeds every river from the mountains in spring.", body),
        PageBreak(),
        PdfParagraph("Lakes and Quarries", h1),
        PdfParagraph("The second page counts the quarries beside the lakes.", body),
        PdfImage(picture, width=12 * cm, height=8 * cm),
        PdfParagraph("A picture of the largest quarry stands above this line.", body),
        NextPageTemplate("two"),
        PageBreak(),
        PdfParagraph("The left column begins with the western shore.", justified),
        PdfParagraph(PDF_CROSSING, justified),
        PdfParagraph("The right column ends with the eastern shore.", justified),
        NextPageTemplate("one"),
        PageBreak(),
        PdfParagraph("We mapped the topo-<br/>graphy and sent an E-<br/>Mail to the office.", body),
        PdfParagraph("The fourth page closes the report with a summary.", body),
    ]
    doc.build(story)
    return Sample(
        path,
        text=("Rivers of the North", "Lakes and Quarries", "closes the report"),
        pages={
            1: ("The first page describes the northern rivers in plain words.",),
            2: ("The second page counts the quarries beside the lakes.",),
            3: ("The left column begins with the western shore.", "eastern shore"),
            4: ("The fourth page closes the report with a summary.",),
        },
    )


def _picture(width: int, height: int) -> Image.Image:
    """A picture with shapes and no text (a photo's stand-in)."""
    image = Image.new("RGB", (width, height), (200, 220, 240))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 10, height // 10, width * 9 // 10, height * 9 // 10), fill=(90, 140, 60))
    draw.rectangle((width // 3, height // 3, width // 2, height * 19 // 20), fill=(120, 90, 60))
    return image


SCANNED_LINES = ("The quick brown fox jumps over the lazy dog", "Scanned invoice number 4711")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def pdf_scanned(folder: Path, pages: int = 1) -> Sample:
    """A PDF of page images with no text layer, as a scanner makes: every page needs OCR.
    Each page holds ``SCANNED_LINES`` and a line naming its page number."""
    font = _font(40)
    images = []
    for number in range(1, pages + 1):
        image = Image.new("L", (1240, 1754), 255)
        draw = ImageDraw.Draw(image)
        lines = [*SCANNED_LINES, f"Scanned page {number}"]
        for row, line in enumerate(lines * 4):
            draw.text((100, 150 + row * 100), line, font=font, fill=0)
        images.append(image)
    path = folder / f"scan-{pages}.pdf"
    images[0].save(path, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return Sample(
        path,
        text=SCANNED_LINES,
        pages={number: (f"Scanned page {number}",) for number in range(1, pages + 1)},
    )


def pdf_encrypted(folder: Path) -> Sample:
    """A PDF that opens only with a password."""
    path = folder / "encrypted.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4, encrypt="secret")
    pdf.drawString(72, 720, "Nobody may read this without the password.")
    pdf.save()
    return Sample(path, fails_with=("pdf_encrypted", "encrypted (password protected)"))


def pdf_truncated(folder: Path) -> Sample:
    """The first half of a real PDF, as an interrupted download leaves it."""
    data = pdf_report(folder).path.read_bytes()
    path = folder / "truncated.pdf"
    path.write_bytes(data[: len(data) // 2])
    return Sample(path, fails_with=("pdf_corrupt", "truncated"))


def pdf_blank_pages(folder: Path, pages: int = Limits().max_pages + 1) -> Sample:
    """Blank pages, one more than the page limit by default (the corpus has 20,000)."""
    pdf = pdfium.PdfDocument.new()
    try:
        for _ in range(pages):
            pdf.new_page(595, 842)
        path = folder / f"blank-{pages}.pdf"
        pdf.save(path)
    finally:
        pdf.close()
    return Sample(
        path, fails_with=("too_many_pages", f"{pages:,} pages; the limit is {Limits().max_pages:,}")
    )


# --- DOCX -----------------------------------------------------------------------------------

FOOTNOTE_TEXT = "Measured by the finance team in March."
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_report(folder: Path) -> Sample:
    """Headings, a list, a table with merged cells, a comment, a footnote, and headers and
    footers over two sections (the second section repeats the first one's header text)."""
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
    _add_footnote(document, intro, FOOTNOTE_TEXT)
    second = document.add_section()
    second.header.is_linked_to_previous = False
    second.header.paragraphs[0].text = "ACME confidential"  # the same text: kept once
    document.add_heading("Appendix", level=1)
    document.add_paragraph("Appendix text.")
    path = folder / "report.docx"
    document.save(path)
    return Sample(
        path,
        text=("Quarterly Report", "Revenue grew by the fifth time.", "Ada | Engineer | Core"),
    )


def _add_footnote(document: WordDocument, paragraph: WordParagraph, text: str) -> None:
    """python-docx has no footnote API: write the footnotes part as Word does (separator
    footnotes -1 and 0, then ours as 1) and reference it from the end of ``paragraph``."""
    footnotes = (
        f'<w:footnotes xmlns:w="{_W}">'
        '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p>'
        "</w:footnote>"
        '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r>'
        "<w:continuationSeparator/></w:r></w:p></w:footnote>"
        '<w:footnote w:id="1"><w:p><w:pPr><w:pStyle w:val="FootnoteText"/></w:pPr>'
        '<w:r><w:rPr><w:vertAlign w:val="superscript"/></w:rPr><w:footnoteRef/></w:r>'
        f'<w:r><w:t xml:space="preserve"> {text}</w:t></w:r></w:p></w:footnote>'
        "</w:footnotes>"
    ).encode()
    part = Part(PackURI("/word/footnotes.xml"), CT.WML_FOOTNOTES, footnotes, document.part.package)
    document.part.relate_to(part, RT.FOOTNOTES)
    paragraph._p.append(
        parse_xml(
            f'<w:r xmlns:w="{_W}"><w:rPr><w:vertAlign w:val="superscript"/></w:rPr>'
            '<w:footnoteReference w:id="1"/></w:r>'
        )
    )


def docx_empty_tables(folder: Path) -> Sample:
    """Three tables with no text in any cell: the document yields nothing."""
    document = python_docx.Document()
    for rows in (1, 2, 3):
        document.add_table(rows=rows, cols=2)
    path = folder / "empty-tables.docx"
    document.save(path)
    return Sample(path)


_MINIMAL_DOCX = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org'
        '/package/2006/content-types"><Default Extension="rels" ContentType="application/'
        'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
        'ContentType="application/xml"/><Override PartName="/word/document.xml" '
        f'ContentType="{CT.WML_DOCUMENT_MAIN}"/></Types>'
    ).encode(),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
        f'Type="{RT.OFFICE_DOCUMENT}" Target="word/document.xml"/></Relationships>'
    ).encode(),
}
ZIP_BOMB_BYTES = 256 * 1024 * 1024


def docx_zip_bomb(folder: Path) -> Sample:
    """A DOCX whose 260 KB document part inflates to 256 MiB (past the 200 MB limit, at a
    ratio of about 1,000:1). The deflate stream is one compressed megabyte of spaces
    repeated, so it takes a fraction of a second to make; the sizes and CRC are true."""
    head = f'<?xml version="1.0"?><w:document xmlns:w="{_W}"><w:body>'.encode()
    chunk = b" " * (1024 * 1024)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor starts afresh: every megabyte compresses the same.
    repeated = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    count = ZIP_BOMB_BYTES // len(chunk)
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    data = start + repeated * count + deflate.flush()
    members = [(name, *_deflated(content)) for name, content in _MINIMAL_DOCX.items()]
    members.append(("word/document.xml", data, crc, len(head) + count * len(chunk)))
    path = folder / "zipbomb.docx"
    path.write_bytes(_zip(members))
    return Sample(path, fails_with=("archive_too_large", "DOCX archive expands beyond 200 MB"))


def _deflated(content: bytes) -> tuple[bytes, int, int]:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflate.compress(content) + deflate.flush(), zlib.crc32(content), len(content)


def _zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A ZIP archive of already deflated members (name, data, CRC, inflated size): what
    ``zipfile`` cannot write without inflating them first."""
    out, central = bytearray(), bytearray()
    for name, data, crc, size in members:
        encoded, offset = name.encode(), len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0
        )
        out += encoded + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded),
            0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += encoded
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0
    )
    return bytes(out + central + end)


def docx_billion_laughs(folder: Path) -> Sample:
    """A DOCX whose document part declares ten levels of nested entities (10^9 "lol"s)."""
    names = ["lol", *(f"lol{n}" for n in range(1, 10))]
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY {name} "{f"&{previous};" * 10}">' for previous, name in itertools.pairwise(names)
    )
    document = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>'
        f'<w:document xmlns:w="{_W}"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>'
        "</w:body></w:document>"
    ).encode()
    path = folder / "billion-laughs.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in _MINIMAL_DOCX.items():
            archive.writestr(name, content)
        archive.writestr("word/document.xml", document)
    return Sample(path, fails_with=("xml_entities", "XML entity declarations are not allowed"))


# --- PPTX and XLSX --------------------------------------------------------------------------


def pptx_deck(folder: Path) -> Sample:
    """Three slides: shapes added out of reading order, a group, a merged table and speaker
    notes; a bulleted list; a bar chart with a title, two series and text categories."""
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
    charts = deck.slides.add_slide(deck.slide_layouts[5])
    charts.shapes.title.text = "Sales"
    data = CategoryChartData()
    data.categories = ["North", "South", "East"]
    data.add_series("Revenue", (10.0, 12.5, 9.0))
    data.add_series("Costs", (7.0, 8.0, 6.5))
    chart = charts.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(2), Inches(6), Inches(4), data
    ).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = "Revenue by region"
    path = folder / "deck.pptx"
    deck.save(path)
    return Sample(
        path,
        text=("Roadmap", "Remember the demo.", "Twice as fast", "Revenue by region"),
        pages={1: ("Roadmap", "Upper box"), 2: ("Goals",), 3: ("Series: Revenue, Costs",)},
    )


def xlsx_book(folder: Path) -> Sample:
    """Three sheets: a small table with gaps, an empty sheet, and 120 rows."""
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
    path = folder / "book.xlsx"
    book.save(path)
    return Sample(path, text=("Coffee | 3 | TRUE", "row 119 | 119"))


# --- ODT and EPUB (ZIP files written by hand) -------------------------------------------------

ODT_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/"'
)


def build_odt(path: Path, body: str) -> Path:
    """An ODT text document with ``body`` as its content and "Field Notes" as its title."""
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


ODT_BODY = (
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


def odt_notes(folder: Path) -> Sample:
    """Headings, spacing elements, a footnote, a comment, a nested list and a table whose
    empty cells and rows repeat."""
    path = build_odt(folder / "notes.odt", ODT_BODY)
    return Sample(path, text=("Birds seen today.", "Ann: Really?", "Bird\nWren"))


def build_epub(path: Path, chapters: dict[str, str], spine: list[str]) -> Path:
    """An EPUB 3 titled "A Small Book" whose chapters are read in ``spine`` order."""
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


EPUB_CHAPTERS = {
    "two": "<h1>Chapter Two</h1><p>The end&#160;came.</p>",
    "one": "<h1>Chapter One</h1><p>It began.</p><ul><li>a list</li></ul>",
    "cover": "",
}


def epub_book(folder: Path) -> Sample:
    """Three chapters stored out of order (an empty cover, then one, then two)."""
    path = build_epub(folder / "book.epub", EPUB_CHAPTERS, spine=["cover", "one", "two"])
    return Sample(path, text=("Chapter One", "It began.", "The end came."))


# --- HTML -----------------------------------------------------------------------------------

HTML_ARTICLE_PARAGRAPHS = (
    "The harbour master counted forty-two fishing boats at dawn, the most since the new "
    "breakwater was finished last autumn.",
    "Fishermen say the calmer water inside the breakwater lets them land their catch even "
    "when the wind turns against the tide, which used to keep half the fleet at sea.",
    "The town council will decide next month whether to lengthen the breakwater by another "
    "two hundred metres, after a survey of the sea bed is complete.",
)


def html_article(folder: Path) -> Sample:
    """A news page as a website serves it: navigation, a cookie banner, the article, a list
    of related links and a footer; only the article is main text."""
    paragraphs = "".join(f"<p>{text}</p>" for text in HTML_ARTICLE_PARAGRAPHS)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Harbour news</title>"
        "<link rel='canonical' href='https://news.example.com/harbour'></head><body>"
        "<header><nav><ul><li><a href='/'>Front page</a></li><li><a href='/sport'>Sport "
        "pages</a></li><li><a href='/weather'>Weather forecast</a></li></ul></nav></header>"
        "<div class='cookies'>We use cookies to improve your experience.</div>"
        "<main><article><h1>Record morning at the harbour</h1>"
        f"{paragraphs}</article></main>"
        "<aside><h3>Related stories</h3><ul><li><a href='/a'>Lighthouse repainted</a></li>"
        "<li><a href='/b'>Ferry timetable changes</a></li></ul></aside>"
        "<footer><p>Copyright 2026 Example News Ltd. All rights reserved.</p></footer>"
        "</body></html>"
    )
    path = folder / "article.html"
    path.write_text(page, encoding="utf-8")
    return Sample(
        path,
        text=("Record morning at the harbour", *HTML_ARTICLE_PARAGRAPHS),
        absent=("Weather forecast", "Lighthouse repainted", "Copyright 2026", "cookies"),
    )


# --- other bad files ------------------------------------------------------------------------


def empty_pdf(folder: Path) -> Sample:
    """Zero bytes named ``.pdf`` (the API refuses it before any job is made)."""
    path = folder / "empty.pdf"
    path.write_bytes(b"")
    return Sample(path, fails_with=("empty_file", "File is empty"))


def png_named_pdf(folder: Path) -> Sample:
    """A small PNG picture named ``.pdf``."""
    path = folder / "image-named.pdf"
    _picture(64, 48).save(path, format="PNG")
    return Sample(path, fails_with=("unsupported_type", "Unsupported file type: PNG image"))


def random_named_pptx(folder: Path) -> Sample:
    """64 KB of random bytes (always the same ones) named ``.pptx``."""
    path = folder / "garbage.pptx"
    path.write_bytes(random.Random(14).randbytes(64 * 1024))
    return Sample(
        path, fails_with=("unsupported_type", "Unsupported file type: unrecognised binary data")
    )


def wav(folder: Path) -> Sample:
    """A tenth of a second of silence: 16 kHz mono 16-bit WAV, like the corpus recordings."""
    path = folder / "silence.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(bytes(3_200))
    return Sample(path, fails_with=("unsupported_type", "Unsupported file type: WAV audio"))


# Every builder of a readable document, by the format detection must find.
READABLE: dict[str, Callable[[Path], Sample]] = {
    "pdf": pdf_report,
    "docx": docx_report,
    "pptx": pptx_deck,
    "xlsx": xlsx_book,
    "odt": odt_notes,
    "epub": epub_book,
    "html": html_article,
}
# Every bad file a document job must refuse with a specific message.
BAD: dict[str, Callable[[Path], Sample]] = {
    "encrypted-pdf": pdf_encrypted,
    "truncated-pdf": pdf_truncated,
    "too-many-pages": pdf_blank_pages,
    "empty": empty_pdf,
    "png-named-pdf": png_named_pdf,
    "random-named-pptx": random_named_pptx,
    "zip-bomb": docx_zip_bomb,
    "billion-laughs": docx_billion_laughs,
}
