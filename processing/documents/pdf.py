"""PDF text extraction with PDFium (pypdfium2), page by page.

PDFium gives text in content-stream order with a line break wherever the baseline moves:
an exponent becomes a line of its own, nothing marks paragraphs or headings, and TeX's
symbol fonts come out as ASCII letters. We read a few numbers per line (font size,
baseline, left and right edge, font name), not per character, so the cost stays close to
PDFium's own, and rebuild visual lines, paragraphs and headings from them.

Two choices follow the reference texts extraction is scored against (Tika-style text, see
``bench/extraction.py``): a paragraph keeps its line breaks (joining them would also join
list items, formula lines and table rows, and gains nothing for search), and running
headers, footers and page numbers are kept as ``header``/``footer`` blocks instead of
being thrown away, so a consumer that wants only the body filters on ``Block.kind``.
"""

# This module maps look-alike characters (primes, accents, math operators) on purpose.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import ctypes
import functools
import io
import itertools
import re
import shutil
import subprocess
import unicodedata
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from processing.documents.base import Block, Document, DocumentError, Limits, Unit

# Pages on each side that a page's top and bottom lines are compared with to find running
# headers and footers; two covers books whose left and right pages differ.
HEADER_WINDOW = 2
# Running headers, footers and page numbers sit within this share of the page's height
# from its top or bottom edge.
EDGE_BAND = 0.2
# A baseline-to-baseline distance this many times the usual one starts a paragraph.
PARAGRAPH_GAP = 1.3
# A horizontal gap wider than this share of the font size between two runs is a space.
WORD_GAP = 0.25
# Headings by size relative to the body text: chapter, section, subsection; a bold line at
# body size comes after those.
HEADING_RATIOS = ((1.6, 1), (1.3, 2), (1.12, 3))
BOLD_HEADING_LEVEL = 4
# A page with less text than this and a large image is treated as a scan and sent to OCR.
OCR_MAX_TEXT_CHARS = 100
OCR_MIN_IMAGE_SHARE = 0.1
OCR_DPI = 300
# A poster-sized page is rendered smaller, to keep the image (and memory) bounded.
OCR_MAX_SIDE = 7000
OCR_TIMEOUT_SECONDS = 120

_LINE = re.compile(r"[^\r\n]+")
_SOFT_HYPHEN = "\ufffe"  # PDFium's mark for a hyphen it found at the end of a line
_LINE_END_HYPHENS = ("-", "\u00ad", "\u2010")
# After a hyphen at a line end, these words mean the hyphen is a real one ("Ein- und
# Ausgabe", "pre- and post-processing"), not a word split across lines.
_CONJUNCTIONS = frozenset(["und", "oder", "bzw", "sowie", "bis", "and", "or", "nor", "to"])
_PAGE_NUMBER = re.compile(
    r"^(?:page|seite|p\.|s\.)?\s*[-–—]?\s*(?:\d+|[ivxlcdm]+)(?:\s*(?:/|of|von)\s*\d+)?\s*[-–—]?$",
    re.IGNORECASE,
)
_EMPTY_PAGE_TREE = re.compile(rb"/Kids\s*\[\s*\]")
_LETTER = re.compile(r"[^\W\d_]")
_NUMBER = re.compile(r"\b(?:\d+|[ivxlcdm]+)\b")
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|BX\d*$|BX\d|[-,]B$", re.IGNORECASE)

# TeX's Computer Modern symbol fonts often come without a Unicode map, and PDFium then
# reads a glyph as the character at its code point: the prime as "0", the norm bars as
# "k", a big sum as "P", a big parenthesis as a control character. Characters that may be
# such a glyph are checked against the font they are set in (a few per page).
_TEX_FONTS = {
    "cmsy": {"0": "′", "k": "‖", "h": "⟨", "i": "⟩", "x": "§", "y": "†", "z": "‡"},
    "cmex": {
        **dict(zip(map(chr, range(32)), "()[]⌊⌋⌈⌉{}⟨⟩|‖/\\()()[]⌊⌋⌈⌉{}⟨⟩/\\", strict=True)),
        **dict(zip("PQRSTXYZ[\\^_", "∑∏∫⋃⋂∑∏∫⋃⋂⋀⋁", strict=True)),
        **dict(zip("z{|}", "︷︷︸︸", strict=True)),  # pieces of over- and underbraces
    },
    "msam": dict(zip("\x00\x01\x02\x03\x04\x06", "⊡⊞⊠□■◊", strict=True)),
}
_TEX_SUSPECTS = re.compile(
    r"(?<![\s\d])0+"  # primes right after a symbol: f′, γ′′
    r"|(?<!\S)[PQRSTXYZ\[\\^_](?!\S)"  # big operators standing alone
    r"|\bk|k\b"  # norm bars around a term: ‖x‖ read as "kxk"
    r"|\bh(?![^\W\d_]{2})|(?<![^\W\d_]{2})i\b"  # angle brackets: ⟨x, y⟩ read as "hx, yi"
    r"|\| ?\{z ?\}|z ?\}\| ?\{"  # an under- or overbrace
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f]"  # glyphs without any character
)
# TeX sets accents as separate glyphs; PDFium reads them as spacing accents beside the
# letter ("X˜"). They become combining marks on that letter ("X̃").
_ACCENTS = dict(zip("˜ˆ˙¨¯ˇ", "\u0303\u0302\u0307\u0308\u0304\u030c", strict=True))
_ACCENT = re.compile(r"[˜ˆ˙¨¯ˇ]")
_ACCENT_AFTER = re.compile(r"(\w)([˜ˆ˙¨¯ˇ])")
_ACCENT_BEFORE = re.compile(r"(?<!\w)([˜ˆ˙¨¯ˇ]) ?(\w)")
_SPACED_ELLIPSIS = re.compile(r"(?<![.] )(?<!\.)\. \. \.(?! ?\.)")
# Ligatures and leftover control characters; tab and newline stay. Only these are
# normalised: NFKC on everything would also flatten ², ½, ℝ. Tall brackets come as pieces
# with private-use code points (their Adobe glyph names); the top piece stands for the
# bracket, the other pieces are dropped.
_CLEAN = str.maketrans(
    {
        **{code: unicodedata.normalize("NFKC", chr(code)) for code in range(0xFB00, 0xFB07)},
        **dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, 0xFEFF, 0xFFFF]),
        **dict.fromkeys(range(0xF8E6, 0xF900), ""),
        **dict(zip([0xF8EB, 0xF8F6, 0xF8EE, 0xF8F9, 0xF8F1, 0xF8FC], "()[]{}", strict=True)),
    }
)
_NEEDS_CLEANING = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f\ufeff\uffff\ufb00-\ufb06\uf8e6-\uf8ff˜ˆ˙¨¯ˇ]|\. \. \."
)


@dataclass(slots=True)
class _Line:
    """One visual line: text plus the few layout numbers paragraph detection needs."""

    text: str
    left: float
    right: float
    base: float  # baseline; PDF y grows upwards
    size: float
    bold: bool
    hyphen: bool = False  # ends with a word split across lines
    start: bool = False  # starts a paragraph
    spread: bool = False  # has wide gaps: table cells, not a heading

    @property
    def top(self) -> float:
        return self.base + 0.75 * self.size

    @property
    def bottom(self) -> float:
        return self.base - 0.25 * self.size


_Edge = tuple[str, float, float]  # signature, baseline, font size


@dataclass(slots=True)
class _Page:
    number: int
    height: float
    lines: list[_Line]
    needs_ocr: bool = False
    body_size: float = 0.0  # the size most of the page's text is set in
    # The top and bottom line (signature, baseline, size), to find running headers.
    edges: tuple[_Edge | None, _Edge | None] = (None, None)


@dataclass
class _Stats:
    """The body text's size and line spacing, learnt over the pages read so far, so a
    page of formulas or a short page is judged by the document's normal text."""

    sizes: Counter[float] = field(default_factory=Counter)
    pitches: Counter[float] = field(default_factory=Counter)

    def learn(self, lines: list[_Line]) -> tuple[float, float]:
        for line in lines:
            self.sizes[round(line.size, 1)] += len(line.text)
        body = self.sizes.most_common(1)[0][0] if self.sizes else 10.0
        for a, b in itertools.pairwise(lines):
            pitch = a.base - b.base
            if abs(a.size - body) < 0.5 and abs(b.size - body) < 0.5 and 0 < pitch < 3 * body:
                self.pitches[round(pitch * 2) / 2] += 1
        pitch = self.pitches.most_common(1)[0][0] if self.pitches else 1.2 * body
        return body, pitch


def read(path: Path, limits: Limits) -> Document:
    """Open and check ``path`` now, so a bad file fails before any unit is produced."""
    pdf = _open(path)
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


def _open(path: Path) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: pdfium.PdfiumError) -> DocumentError:
    """Say what is wrong with a file PDFium refused, as precisely as its bytes allow
    (PDFium's own error code is stale when it refuses a document without pages)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(1024)
            f.seek(max(0, size - 1024))
            tail = f.read()
            f.seek(0)
            small = f.read() if size <= 1024 * 1024 else b""
    except OSError as os_exc:
        return DocumentError(f"PDF cannot be read: {os_exc.strerror}", code="pdf_unreadable")
    if size == 0:
        return DocumentError("The file is empty (0 bytes)", code="empty_file")
    if b"%PDF-" not in head:
        kind = _sniff(head)
        return DocumentError(
            f"The file is not a PDF{f' (it looks like {kind})' if kind else ''}",
            code="not_a_pdf",
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


def _sniff(head: bytes) -> str | None:
    signatures = {
        b"\x89PNG": "a PNG image",
        b"\xff\xd8\xff": "a JPEG image",
        b"GIF8": "a GIF image",
        b"PK\x03\x04": "a ZIP archive or an Office document",
        b"\xd0\xcf\x11\xe0": "a legacy Office document",
        b"RIFF": "a RIFF file (WAV, AVI or WebP)",
        b"<": "HTML or XML",
    }
    stripped = head.lstrip()
    return next((kind for sig, kind in signatures.items() if stripped.startswith(sig)), None)


def _units(
    pdf: pdfium.PdfDocument, count: int, limits: Limits, warnings: list[str]
) -> Iterator[Unit]:
    """Yield pages while reading ``HEADER_WINDOW`` pages ahead, the context needed to
    recognise running headers; memory stays bounded by that window."""
    stats = _Stats()
    ahead: deque[_Page] = deque()
    behind: deque[_Page] = deque(maxlen=HEADER_WINDOW)
    total = 0
    try:
        for index in range(count + HEADER_WINDOW):
            if index < count:
                ahead.append(_load(pdf, index))
            if index < HEADER_WINDOW or not ahead:
                continue
            page = ahead.popleft()
            ocr = False
            if page.needs_ocr and (text := _ocr_page(pdf, page, limits, warnings)) is not None:
                blocks = [Block(paragraph) for paragraph in _ocr_paragraphs(text)]
                ocr = True
            else:
                headers, footers = _running_lines(page, [*behind, *ahead])
                blocks = headers + _blocks(page.lines, stats) + footers
            behind.append(page)
            page.lines = []
            total += sum(len(block.text) for block in blocks)
            if total > limits.max_characters:
                raise DocumentError(
                    f"PDF has more than {limits.max_characters:,} characters of text "
                    f"(limit reached on page {page.number})",
                    code="too_many_characters",
                )
            yield Unit(number=page.number, kind="page", blocks=blocks, ocr=ocr)
        if total == 0:
            why = "; ".join(warnings) if warnings else "its pages have no text layer"
            raise DocumentError(f"PDF contains no text ({why})", code="pdf_no_text")
    finally:
        pdf.close()


def _load(pdf: pdfium.PdfDocument, index: int) -> _Page:
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
        chars = sum(len(line.text) for line in lines)
        needs_ocr = chars < OCR_MAX_TEXT_CHARS and _image_share(page) >= OCR_MIN_IMAGE_SHARE
    finally:
        page.close()
    sizes = Counter[float]()
    for line in lines:
        sizes[line.size] += len(line.text)
    body_size = sizes.most_common(1)[0][0] if sizes else 0.0
    result = _Page(index + 1, height, lines, needs_ocr, body_size)
    result.edges = _edges(result)
    return result


# --- lines --------------------------------------------------------------------------------


def _lines(textpage: pdfium.PdfTextPage) -> list[_Line]:
    """Visual lines in reading order, from PDFium's lines with superscripts and other
    raised or lowered runs put back where they sit."""
    text = textpage.get_text_range()
    page = _TextPage(textpage.raw, text, len(text) == textpage.count_chars())
    lines: list[_Line] = []
    for match in _LINE.finditer(text):
        start = match.start()
        for piece in match.group().split(_SOFT_HYPHEN):
            end = start + len(piece)
            segment = page.segment(start, end, hyphen=end < match.end())
            start = end + 1
            if segment is None:
                continue
            if lines and _same_line(lines[-1], segment):
                _merge(lines[-1], segment)
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

    def segment(self, start: int, end: int, *, hyphen: bool) -> _Line | None:
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
        if _TEX_SUSPECTS.search(text):
            text = _TEX_SUSPECTS.sub(lambda m: self.tex_symbol(first, m), text)
        if _NEEDS_CLEANING.search(text):
            text = _clean(text)
            if not text:
                return None
        return _Line(text, x0, x1, base, size or 10.0, bold, hyphen)

    def tex_symbol(self, first: int, match: re.Match[str]) -> str:
        name = self.font(self.char(first + match.start())).lower()
        for family, table in _TEX_FONTS.items():
            if family in name:
                return "".join(table.get(char, char) for char in match[0])
        return match[0]


_font_size = pdfium_c.FPDFText_GetFontSize
_char_origin = pdfium_c.FPDFText_GetCharOrigin
_char_box = pdfium_c.FPDFText_GetCharBox


@functools.cache
def _bold(font: str) -> bool:
    return bool(_BOLD_NAME.search(font.split("+")[-1]))


def _clean(text: str) -> str:
    text = text.translate(_CLEAN)
    if ". . ." in text:
        text = _SPACED_ELLIPSIS.sub("...", text)
    if _ACCENT.search(text):
        text = _ACCENT_AFTER.sub(lambda m: m[1] + _ACCENTS[m[2]], text)
        text = _ACCENT_BEFORE.sub(lambda m: m[2] + _ACCENTS[m[1]], text)
    return text.strip()


def _same_line(a: _Line, b: _Line) -> bool:
    """Whether ``b`` continues ``a`` on the same visual line (a raised exponent, a lowered
    index, a run PDFium split off), judged by vertical overlap and left-to-right order;
    an index may sit under an exponent, so a smaller run may step back a little."""
    small = min(a.size, b.size)
    back = a.size if b.size < 0.9 * a.size else 0.5 * small
    if a.hyphen or b.left < a.right - back:
        return False
    overlap = min(a.top, b.top) - max(a.bottom, b.bottom)
    return overlap >= 0.4 * small


def _merge(a: _Line, b: _Line) -> None:
    gap = b.left - a.right
    a.spread = a.spread or b.spread or gap > 2 * max(a.size, b.size)
    a.text += (" " if gap > WORD_GAP * max(a.size, b.size) else "") + b.text
    a.right = max(a.right, b.right)
    if b.size > a.size:
        a.size, a.base = b.size, b.base
    a.bold = a.bold and b.bold
    a.hyphen = b.hyphen


# --- running headers and footers ------------------------------------------------------------


def _edges(page: _Page) -> tuple[_Edge | None, _Edge | None]:
    """The top and bottom line, when they sit in the page margin apart from the body:
    the candidates for a running header and footer."""
    if len(page.lines) < 2:
        return None, None
    by_height = sorted(page.lines, key=lambda line: line.base)
    band = EDGE_BAND * page.height
    bottom, above = by_height[0], by_height[1]
    top, below = by_height[-1], by_height[-2]
    return (
        (_signature(top), top.base, top.size)
        if top.base > page.height - band and top.base - below.base > 1.5 * top.size
        else None,
        (_signature(bottom), bottom.base, bottom.size)
        if bottom.base < band and above.base - bottom.base > 1.5 * bottom.size
        else None,
    )


def _signature(line: _Line) -> str:
    """The line without its page number, to recognise the same header on other pages."""
    return _NUMBER.sub("#", line.text.lower())


def _running_lines(page: _Page, neighbours: list[_Page]) -> tuple[list[Block], list[Block]]:
    """Take out the page's running header and footer: page numbers, lines repeated at the
    same edge of nearby pages, and a header in smaller type set at exactly the same place
    as theirs (one that names the current section changes its text). They become
    ``header`` and ``footer`` blocks, so a reader of the body can skip them."""
    found: tuple[list[Block], list[Block]] = ([], [])
    for edge, kind in ((0, "header"), (1, "footer")):
        own = page.edges[edge]
        if own is None:
            continue
        signature, base, size = own
        line = next(line for line in page.lines if line.base == base)
        repeated = any(
            (other := neighbour.edges[edge]) is not None
            and abs(other[1] - base) < 0.01 * page.height
            and (
                other[0] == signature
                or (edge == 0 and abs(other[1] - base) < 0.5 and size == other[2] < page.body_size)
            )
            for neighbour in neighbours
        )
        if repeated or _PAGE_NUMBER.match(line.text):
            page.lines.remove(line)
            found[edge].append(Block(line.text, kind=kind))
    return found


# --- blocks ---------------------------------------------------------------------------------


def _blocks(lines: list[_Line], stats: _Stats) -> list[Block]:
    """Group a page's lines into headings and paragraphs, the way a reader would: a new
    paragraph after a larger vertical gap, an indented first line or a line sticking out,
    a heading where the type is larger or bold."""
    if not lines:
        return []
    body, pitch = stats.learn(lines)
    margins = _right_margins(lines)
    blocks: list[Block] = []
    group: list[_Line] = []
    group_level = 0
    previous: _Line | None = None
    for line in lines:
        level = _heading_level(line, body)
        if (
            previous is None
            or level != group_level
            or _starts_paragraph(
                previous, line, pitch * max(previous.size, line.size) / body, margins
            )
        ):
            if group:
                blocks.append(_block(group, group_level))
            group, group_level = [], level
            line.start = True
        group.append(line)
        previous = line
    blocks.append(_block(group, group_level))
    return blocks


def _heading_level(line: _Line, body: float) -> int:
    if line.spread or len(line.text) > 150 or not _LETTER.search(line.text):
        return 0
    ratio = line.size / body
    return next((level for minimum, level in HEADING_RATIOS if ratio >= minimum), 0)


def _starts_paragraph(previous: _Line, line: _Line, pitch: float, margins: list[float]) -> bool:
    """PDFBox's rule, which readers of its output are used to: a paragraph starts after a
    gap clearly larger than the line spacing, on a line indented against the one before
    (unless that one started the paragraph: a hanging indent), or on a line sticking out
    to the left of a paragraph's continuation lines. Added: an indent after a sentence
    that stops short of the margin starts a paragraph, and a sentence running on at the
    top of the next column does not."""
    full = _full(previous, margins)
    if line.base > previous.top:
        return not (full and line.text[0].islower() and previous.text[-1] not in ".!?:")
    if line.left > previous.right + line.size:
        return True  # beside the line before: a box, a figure label
    if previous.base - line.base > PARAGRAPH_GAP * pitch:
        return True
    space = 0.3 * line.size
    shift = line.left - previous.left
    if shift > 2 * space:
        return not previous.start or (not full and previous.text[-1] in ".!?")
    if shift < -space:
        return not previous.start
    return False


def _right_margins(lines: list[_Line]) -> list[float]:
    """Right edges shared by several lines: where the page's columns end."""
    counts = Counter(round(line.right / 4) * 4 for line in lines)
    return sorted(right for right, count in counts.items() if count >= 3)


def _full(line: _Line, margins: list[float]) -> bool:
    """Whether the line runs to its column's right edge, as a line that wrapped does."""
    margin = next((right for right in margins if right >= line.right - 4), None)
    return margin is None or line.right >= margin - 3 * line.size


def _block(lines: list[_Line], level: int) -> Block:
    text = _paragraph_text(lines)
    if not level and len(lines) == 1 and _bold_heading(lines[0]):
        level = BOLD_HEADING_LEVEL
    if level:
        return Block(text, kind="heading", level=level)
    return Block(text)


def _bold_heading(line: _Line) -> bool:
    """A bold line at body size set off as a paragraph of its own is a heading; a bold
    label that runs into the text below it ("Definition 1") is not."""
    return (
        line.bold
        and not line.spread
        and line.text[-1] not in ".,;:"
        and _LETTER.search(line.text) is not None
    )


def _paragraph_text(lines: list[_Line]) -> str:
    """Join a paragraph's lines, re-joining words hyphenated across a line break.

    Line breaks inside the paragraph are kept: list items, formulas, table rows and verse
    need them, and joining the rest would gain nothing for search or chunking."""
    parts: list[str] = []
    hyphenated = False
    for line in lines:
        text = line.text
        if hyphenated:
            word, _, rest = text.partition(" ")
            head = parts[-1].rstrip("".join(_LINE_END_HYPHENS))
            if word.rstrip(".,;:").lower() in _CONJUNCTIONS:
                parts[-1] = f"{head}-"  # a real hyphen before a separate word: "Ein- und"
            else:
                parts[-1] = head + ("-" if _keeps_hyphen(head, word) else "") + word
                text = rest
        hyphenated = line.hyphen or (
            text.endswith(_LINE_END_HYPHENS) and len(text) > 1 and text[-2].isalpha()
        )
        if text:
            parts.append(text)
    if hyphenated and parts[-1][-1:].isalpha():
        parts[-1] += "-"
    return "\n".join(parts)


def _keeps_hyphen(head: str, word: str) -> bool:
    """Whether a hyphen at a line end belongs to the word: before a capital ("Schwarz-
    Weiß", "E-Mail"), before or after a digit ("3-dimensional")."""
    return not word[:1].isalpha() or word[0].isupper() or head[-1:].isdigit()


# --- OCR ------------------------------------------------------------------------------------


def _image_share(page: pdfium.PdfPage) -> float:
    """Fraction of the page covered by images, to tell a scan from a sparse text page."""
    width, height = page.get_size()
    if width <= 0 or height <= 0:
        return 0.0
    area = 0.0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4):
        left, bottom, right, top = obj.get_bounds()
        area += max(0.0, min(right, width) - max(left, 0.0)) * max(
            0.0, min(top, height) - max(bottom, 0.0)
        )
    return min(1.0, area / (width * height))


def _ocr_page(
    pdf: pdfium.PdfDocument, page: _Page, limits: Limits, warnings: list[str]
) -> str | None:
    if not limits.ocr:
        _warn_once(warnings, "OCR is turned off: scanned pages were left without text")
        return None
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        _warn_once(warnings, "Tesseract is not installed: scanned pages were left without text")
        return None
    languages = _ocr_languages(tesseract, limits.ocr_languages)
    pdf_page = pdf[page.number - 1]
    try:
        scale = min(OCR_DPI / 72, OCR_MAX_SIDE / max(pdf_page.get_size()))
        image = pdf_page.render(scale=scale, grayscale=True).to_pil()
    finally:
        pdf_page.close()
    buffer = io.BytesIO()
    image.save(buffer, format="PPM")
    try:
        result = subprocess.run(  # noqa: S603 - a fixed program and arguments, no shell
            [tesseract, "stdin", "stdout", "-l", languages, "--dpi", str(round(scale * 72))],
            input=buffer.getvalue(),
            capture_output=True,
            timeout=OCR_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        warnings.append(f"OCR of page {page.number} took over {OCR_TIMEOUT_SECONDS} s")
        return None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        warnings.append(f"OCR of page {page.number} failed: {message[0]}")
        return None
    return result.stdout.decode("utf-8", "replace")


def _warn_once(warnings: list[str], message: str) -> None:
    if message not in warnings:
        warnings.append(message)


@functools.cache
def _ocr_languages(tesseract: str, wanted: str) -> str:
    """The wanted languages that are installed; Tesseract fails outright on a missing one."""
    try:
        listed = subprocess.run(  # noqa: S603
            [tesseract, "--list-langs"], capture_output=True, timeout=30, check=False
        ).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return wanted
    installed = set(listed.split()[1:]) if listed else set()
    available = [lang for lang in wanted.split("+") if lang in installed]
    return "+".join(available) or "eng"


def _ocr_paragraphs(text: str) -> list[str]:
    lines_by_paragraph = re.split(r"\n\s*\n", text.translate(_CLEAN))
    paragraphs = []
    for chunk in lines_by_paragraph:
        lines = [line.strip() for line in chunk.splitlines() if line.strip()]
        if lines:
            paragraphs.append(_paragraph_text([_Line(line, 0, 0, 0, 10, False) for line in lines]))
    return paragraphs
