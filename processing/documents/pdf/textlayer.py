"""Everything read from PDFium: opening a PDF (and saying why it cannot be opened), and a
page's text layer as ``Line``s.

PDFium gives text in content-stream order with a line break wherever the baseline moves:
an exponent becomes a line of its own, nothing marks paragraphs or headings, and TeX's
symbol fonts come out as ASCII letters. We read a few numbers per line (font size,
baseline, left and right edge, font name), not per character, so the cost stays close to
PDFium's own; ``layout`` rebuilds the page from them. The ctypes calls live here alone
because this is the hot loop, and the one place where PDFium's quirks are known.
"""

from __future__ import annotations

import ctypes
import functools
import re
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from processing.documents import detect
from processing.documents.base import DocumentError
from processing.documents.pdf.glyphs import NEEDS_CLEANING, TEX_SUSPECTS, clean, tex_symbols
from processing.documents.pdf.layout import Line, Page, make_page, merge, same_line
from processing.documents.pdf.ocr import looks_scanned

_LINE = re.compile(r"[^\r\n]+")
_SOFT_HYPHEN = "\ufffe"  # PDFium's mark for a hyphen it found at the end of a line
_EMPTY_PAGE_TREE = re.compile(rb"/Kids\s*\[\s*\]")
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|BX\d*$|BX\d|[-,]B$", re.IGNORECASE)


def open_pdf(path: Path) -> pdfium.PdfDocument:
    """Open ``path``, or fail with a ``DocumentError`` that says what is wrong with it."""
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: pdfium.PdfiumError) -> DocumentError:
    """Say what is wrong with a file PDFium refused, as precisely as its bytes allow
    (PDFium's own error code is stale when it refuses a document without pages).

    ``open_document`` sends a file here only once ``detect`` found a PDF header, so the
    checks for an empty file and a missing header matter only to callers of ``read``
    (tests, benchmarks); what a non-PDF really is, ``detect`` says, as it does for uploads.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(detect.PDF_HEAD_BYTES)
            f.seek(max(0, size - 1024))
            tail = f.read()
            f.seek(0)
            small = f.read() if size <= 1024 * 1024 else b""
    except OSError as os_exc:
        return DocumentError(f"PDF cannot be read: {os_exc.strerror}", code="pdf_unreadable")
    if size == 0:
        return DocumentError("The file is empty (0 bytes)", code="empty_file")
    if not detect.has_pdf_header(head):
        kind = detect.describe(head)
        return DocumentError(
            f"The file is not a PDF{f' ({kind})' if kind else ''}", code="not_a_pdf"
        )
    if b"%%EOF" not in tail:
        return DocumentError(
            f"PDF is truncated: it ends after {size:,} bytes without an end-of-file marker",
            code="pdf_corrupt",
        )
    if _EMPTY_PAGE_TREE.search(small):
        return DocumentError("PDF has no pages", code="pdf_no_pages")
    if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
        return DocumentError("PDF is encrypted (password protected)", code="pdf_encrypted")
    if exc.err_code == pdfium_c.FPDF_ERR_SECURITY:
        return DocumentError(
            "PDF uses an unsupported encryption or security handler", code="pdf_encrypted"
        )
    return DocumentError(f"PDF is damaged and cannot be opened ({exc})", code="pdf_corrupt")


def load_page(pdf: pdfium.PdfDocument, index: int) -> Page:
    """Read page ``index`` (0-based) into lines and close it: only the lines are kept, so
    the pages held for running-header context cost no PDFium memory."""
    try:
        page = pdf[index]
    except pdfium.PdfiumError as exc:
        raise DocumentError(
            f"PDF page {index + 1} is damaged and cannot be read", code="pdf_corrupt"
        ) from exc
    try:
        height = page.get_height()
        textpage = page.get_textpage()
        try:
            lines = _lines(textpage)
        finally:
            textpage.close()
        needs_ocr = looks_scanned(page, sum(len(line.text) for line in lines))
    finally:
        page.close()
    return make_page(index + 1, height, lines, needs_ocr)


def _lines(textpage: pdfium.PdfTextPage) -> list[Line]:
    """Visual lines in reading order, from PDFium's lines with superscripts and other
    raised or lowered runs put back where they sit."""
    text = textpage.get_text_range()
    page = _TextPage(textpage.raw, text, len(text) == textpage.count_chars())
    lines: list[Line] = []
    for match in _LINE.finditer(text):
        start = match.start()
        for piece in match.group().split(_SOFT_HYPHEN):
            end = start + len(piece)
            segment = page.segment(start, end, hyphen=end < match.end())
            start = end + 1
            if segment is None:
                continue
            if lines and same_line(lines[-1], segment):
                merge(lines[-1], segment)
            else:
                lines.append(segment)
    return lines


class _TextPage:
    """The few PDFium calls made per line, with reusable out-parameters."""

    def __init__(self, raw: object, text: str, identity: bool) -> None:
        self.raw = raw
        self.text = text
        # Text and character indices differ only when PDFium dropped or added characters.
        self.identity = identity
        self.x, self.y = ctypes.c_double(), ctypes.c_double()
        self.box = [ctypes.c_double() for _ in range(4)]
        self.name = ctypes.create_string_buffer(128)
        self.flags = ctypes.c_int()

    def char(self, text_index: int) -> int:
        if self.identity:
            return text_index
        return pdfium_c.FPDFText_GetCharIndexFromTextIndex(self.raw, text_index)

    def font(self, index: int) -> str:
        length = pdfium_c.FPDFText_GetFontInfo(self.raw, index, self.name, 128, self.flags)
        return self.name.value.decode("utf-8", "replace") if 0 < length <= 128 else ""

    def segment(self, start: int, end: int, *, hyphen: bool) -> Line | None:
        """The line for ``text[start:end]``, measured on its first, middle and last
        characters only (the largest sets size and baseline, so an exponent does not)."""
        piece = self.text[start:end]
        text = piece.strip()
        if not text:
            return None
        first = start + len(piece) - len(piece.lstrip())
        last = first + len(text) - 1
        raw, x, y = self.raw, self.x, self.y
        middle = (first + last) // 2
        if self.identity:
            indices = (first, middle, last)
        else:
            indices = (self.char(first), self.char(middle), self.char(last))
            if min(indices) < 0:
                return None
        size = base = 0.0
        for index in indices:
            sample = _font_size(raw, index)
            if sample > size:
                _char_origin(raw, index, x, y)
                size, base = sample, y.value
        left, right, bottom, top = self.box
        _char_box(raw, indices[0], left, right, bottom, top)
        x0 = left.value
        _char_box(raw, indices[2], left, right, bottom, top)
        x1 = max(right.value, x0)
        # Only a short line can be a heading, the one use of boldness.
        bold = len(text) <= 80 and _bold(self.font(indices[0]))
        if bold and indices[2] != indices[0]:
            bold = _bold(self.font(indices[2]))
        if TEX_SUSPECTS.search(text):
            text = TEX_SUSPECTS.sub(lambda m: self.tex_symbol(first, m), text)
        if NEEDS_CLEANING.search(text):
            text = clean(text)
            if not text:
                return None
        return Line(text, x0, x1, base, size or 10.0, bold, hyphen)

    def tex_symbol(self, first: int, match: re.Match[str]) -> str:
        """The suspect characters read in the font they are set in, looked up only for
        suspects (a few per page): most lines never ask PDFium for a font name."""
        return tex_symbols(self.font(self.char(first + match.start())), match[0])


_font_size = pdfium_c.FPDFText_GetFontSize
_char_origin = pdfium_c.FPDFText_GetCharOrigin
_char_box = pdfium_c.FPDFText_GetCharBox


@functools.cache
def _bold(font: str) -> bool:
    """Whether a font is bold, by its name without the subset prefix ("ABCDEF+CMBX10");
    cached, as a document sets many lines in few fonts."""
    return bool(_BOLD_NAME.search(font.split("+")[-1]))
