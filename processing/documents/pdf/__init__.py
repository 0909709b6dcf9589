"""PDF text extraction with PDFium (pypdfium2), page by page: ``read`` is the entry point.

Two choices follow the reference texts extraction is scored against (Tika-style text, see
``bench/extraction.py``): a paragraph keeps its line breaks (joining them would also join
list items, formula lines and table rows, and gains nothing for search), and running
headers, footers and page numbers are kept as ``header``/``footer`` blocks instead of
being thrown away, so a consumer that wants only the body filters on ``Block.kind``.

The work is split by what it deals with:

- ``textlayer``: opening the file and reading each page's text layer from PDFium as lines;
- ``layout``: lines into paragraphs, headings and running headers and footers;
- ``glyphs``: tables that repair characters badly mapped fonts give (TeX symbols, accents);
- ``ocr``: telling scanned pages apart and reading them with Tesseract.

This module walks the pages and applies the document's limits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium

from processing.documents.base import Block, Document, DocumentError, Limits, Unit
from processing.documents.pdf import ocr
from processing.documents.pdf.layout import HEADER_WINDOW, Page, Stats, blocks, running_lines
from processing.documents.pdf.textlayer import load_page, open_pdf

__all__ = ["read"]


def read(path: Path, limits: Limits) -> Document:
    """Open and check ``path`` now, so a bad file fails before any unit is produced."""
    pdf = open_pdf(path)
    try:
        count = len(pdf)
        if count == 0:
            raise DocumentError("PDF has no pages", code="pdf_no_pages")
        if count > limits.max_pages:
            raise DocumentError(
                f"PDF has {count:,} pages; the limit is {limits.max_pages:,}",
                code="too_many_pages",
            )
        title = (pdf.get_metadata_dict(skip_empty=True).get("Title") or "").strip() or None
    except BaseException:
        pdf.close()
        raise
    document = Document(format="pdf", unit_count=count, units=iter(()), title=title)
    document.units = _units(pdf, count, limits, document.warnings)
    return document


def _units(
    pdf: pdfium.PdfDocument, count: int, limits: Limits, warnings: list[str]
) -> Iterator[Unit]:
    """Yield pages while reading ``HEADER_WINDOW`` pages ahead, the context needed to
    recognise running headers; memory stays bounded by that window."""
    stats = Stats()
    ahead: deque[Page] = deque()
    behind: deque[Page] = deque(maxlen=HEADER_WINDOW)
    total = 0
    try:
        for index in range(count + HEADER_WINDOW):
            if index < count:
                ahead.append(load_page(pdf, index))
            if index < HEADER_WINDOW or not ahead:
                continue
            page = ahead.popleft()
            scanned = False
            if page.needs_ocr and (text := ocr.page_text(pdf, page, limits, warnings)) is not None:
                found = [Block(paragraph) for paragraph in ocr.paragraphs(text)]
                scanned = True
            else:
                headers, footers = running_lines(page, [*behind, *ahead])
                found = headers + blocks(page.lines, stats) + footers
            behind.append(page)
            page.lines = []
            total += sum(len(block.text) for block in found)
            if total > limits.max_characters:
                raise DocumentError(
                    f"PDF has more than {limits.max_characters:,} characters of text "
                    f"(limit reached on page {page.number})",
                    code="too_many_characters",
                )
            yield Unit(number=page.number, kind="page", blocks=found, ocr=scanned)
        if total == 0:
            why = "; ".join(warnings) if warnings else "its pages have no text layer"
            raise DocumentError(f"PDF contains no text ({why})", code="pdf_no_text")
    finally:
        pdf.close()
