"""A page's structure rebuilt from its lines' positions: visual lines, paragraphs,
headings, the reading order across columns, and running headers and footers.

PDFs carry none of this: they place runs of glyphs at coordinates. The rules here work
on ``Line``s (text plus a few numbers) and never call PDFium, so they can be read, tuned
and tested without a PDF, and OCR reuses the paragraph joining. ``textlayer`` makes the
lines; this module decides what they are.
"""

# The page-number pattern matches typographic dashes on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field

from processing.documents.base import Block

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

_LINE_END_HYPHENS = ("-", "\u00ad", "\u2010")
# After a hyphen at a line end, these words mean the hyphen is a real one ("Ein- und
# Ausgabe", "pre- and post-processing"), not a word split across lines.
_CONJUNCTIONS = frozenset(["und", "oder", "bzw", "sowie", "bis", "and", "or", "nor", "to"])
_PAGE_NUMBER = re.compile(
    r"^(?:page|seite|p\.|s\.)?\s*[-–—]?\s*(?:\d+|[ivxlcdm]+)(?:\s*(?:/|of|von)\s*\d+)?\s*[-–—]?$",
    re.IGNORECASE,
)
_LETTER = re.compile(r"[^\W\d_]")
_NUMBER = re.compile(r"\b(?:\d+|[ivxlcdm]+)\b")


@dataclass(slots=True)
class Line:
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


Edge = tuple[str, float, float]  # signature, baseline, font size


@dataclass(slots=True)
class Page:
    number: int
    height: float
    lines: list[Line]
    needs_ocr: bool = False
    body_size: float = 0.0  # the size most of the page's text is set in
    # The top and bottom line (signature, baseline, size), to find running headers.
    edges: tuple[Edge | None, Edge | None] = (None, None)


@dataclass
class Stats:
    """The body text's size and line spacing, learnt over the pages read so far, so a
    page of formulas or a short page is judged by the document's normal text."""

    sizes: Counter[float] = field(default_factory=Counter)
    pitches: Counter[float] = field(default_factory=Counter)

    def learn(self, lines: list[Line]) -> tuple[float, float]:
        for line in lines:
            self.sizes[round(line.size, 1)] += len(line.text)
        body = self.sizes.most_common(1)[0][0] if self.sizes else 10.0
        for a, b in itertools.pairwise(lines):
            pitch = a.base - b.base
            if abs(a.size - body) < 0.5 and abs(b.size - body) < 0.5 and 0 < pitch < 3 * body:
                self.pitches[round(pitch * 2) / 2] += 1
        pitch = self.pitches.most_common(1)[0][0] if self.pitches else 1.2 * body
        return body, pitch


def make_page(number: int, height: float, lines: list[Line], needs_ocr: bool) -> Page:
    """A page with what its neighbours will be compared on, measured while its lines are
    at hand: its body size and its candidate header and footer."""
    sizes = Counter[float]()
    for line in lines:
        sizes[line.size] += len(line.text)
    body_size = sizes.most_common(1)[0][0] if sizes else 0.0
    page = Page(number, height, lines, needs_ocr, body_size)
    page.edges = _edges(page)
    return page


# --- visual lines ---------------------------------------------------------------------------


def same_line(a: Line, b: Line) -> bool:
    """Whether ``b`` continues ``a`` on the same visual line (a raised exponent, a lowered
    index, a run PDFium split off), judged by vertical overlap and left-to-right order;
    an index may sit under an exponent, so a smaller run may step back a little."""
    small = min(a.size, b.size)
    back = a.size if b.size < 0.9 * a.size else 0.5 * small
    if a.hyphen or b.left < a.right - back:
        return False
    overlap = min(a.top, b.top) - max(a.bottom, b.bottom)
    return overlap >= 0.4 * small


def merge(a: Line, b: Line) -> None:
    """Append ``b`` to ``a``, with a space only where the gap between them is one; the
    larger run sets the line's size and baseline, as it sets the line's place on the page."""
    gap = b.left - a.right
    a.spread = a.spread or b.spread or gap > 2 * max(a.size, b.size)
    a.text += (" " if gap > WORD_GAP * max(a.size, b.size) else "") + b.text
    a.right = max(a.right, b.right)
    if b.size > a.size:
        a.size, a.base = b.size, b.base
    a.bold = a.bold and b.bold
    a.hyphen = b.hyphen


# --- running headers and footers ------------------------------------------------------------


def _edges(page: Page) -> tuple[Edge | None, Edge | None]:
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


def _signature(line: Line) -> str:
    """The line without its page number, to recognise the same header on other pages."""
    return _NUMBER.sub("#", line.text.lower())


def running_lines(page: Page, neighbours: list[Page]) -> tuple[list[Block], list[Block]]:
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


def blocks(lines: list[Line], stats: Stats) -> list[Block]:
    """Group a page's lines into headings and paragraphs, the way a reader would: a new
    paragraph after a larger vertical gap, an indented first line or a line sticking out,
    a heading where the type is larger or bold."""
    if not lines:
        return []
    body, pitch = stats.learn(lines)
    margins = _right_margins(lines)
    found: list[Block] = []
    group: list[Line] = []
    group_level = 0
    previous: Line | None = None
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
                found.append(_block(group, group_level))
            group, group_level = [], level
            line.start = True
        group.append(line)
        previous = line
    found.append(_block(group, group_level))
    return found


def _heading_level(line: Line, body: float) -> int:
    """Heading depth from the type size against the body's, 0 for body text; a table row
    (wide gaps), a long line or one without letters is never a heading."""
    if line.spread or len(line.text) > 150 or not _LETTER.search(line.text):
        return 0
    ratio = line.size / body
    return next((level for minimum, level in HEADING_RATIOS if ratio >= minimum), 0)


def _starts_paragraph(previous: Line, line: Line, pitch: float, margins: list[float]) -> bool:
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


def _right_margins(lines: list[Line]) -> list[float]:
    """Right edges shared by several lines: where the page's columns end."""
    counts = Counter(round(line.right / 4) * 4 for line in lines)
    return sorted(right for right, count in counts.items() if count >= 3)


def _full(line: Line, margins: list[float]) -> bool:
    """Whether the line runs to its column's right edge, as a line that wrapped does."""
    margin = next((right for right in margins if right >= line.right - 4), None)
    return margin is None or line.right >= margin - 3 * line.size


def _block(lines: list[Line], level: int) -> Block:
    text = paragraph_text(lines)
    if not level and len(lines) == 1 and _bold_heading(lines[0]):
        level = BOLD_HEADING_LEVEL
    if level:
        return Block(text, kind="heading", level=level)
    return Block(text)


def _bold_heading(line: Line) -> bool:
    """A bold line at body size set off as a paragraph of its own is a heading; a bold
    label that runs into the text below it ("Definition 1") is not."""
    return (
        line.bold
        and not line.spread
        and line.text[-1] not in ".,;:"
        and _LETTER.search(line.text) is not None
    )


def paragraph_text(lines: list[Line]) -> str:
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
