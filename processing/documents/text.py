"""Plain text and Markdown, plus the text rules every extractor shares.

The shared part lives here because every format ends in the same place: cleaned strings
in ``Block``s, grouped into ``Unit``s, counted against ``Limits.max_characters``. Keeping
the cleaning, the table/list rendering, the sectioning and the character budget in one
module means a DOCX table and an HTML table read the same way and hit the same limit.

The text reader itself streams the file line by line, so a 200 MB log is never held as one
string; only the current paragraph and the current unit are in memory.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from processing.documents.base import Block, Document, DocumentError, Limits, Unit
from processing.documents.detect import SNIFF_BYTES, guess_encoding, looks_like_markdown

# Blocks per section for formats without pages: small enough that progress and cancel
# come often, large enough that a section is a meaningful piece of the document.
SECTION_BLOCKS = 50
# A paragraph with no blank line for this long is cut, so one unbroken 200 MB line cannot
# become a single block (and a single unit) held in memory whole.
MAX_BLOCK_CHARS = 100_000

# Ligature code points (ﬁ, ﬂ, ĳ, ǆ...) that PDFs and Word files carry and that break
# search; only these get NFKC, because NFKC on everything would also rewrite ², ½, ™...
_LIGATURES = re.compile(
    "[\u0132\u0133\u013f\u0140\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06\ufb13-\ufb17]"
)
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
# Control characters and invisible marks that only get in the way of search and chunking.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f\u00ad\u200b\u2060\ufeff]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _normalise(text: str) -> str:
    text = _LINE_BREAKS.sub("\n", text)
    text = _INVISIBLE.sub("", text)
    return _LIGATURES.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def clean(text: str | None) -> str:
    """Collapse space runs, strip lines and undo ligatures, keeping line breaks."""
    if not text:
        return ""
    text = _HORIZONTAL_SPACE.sub(" ", _normalise(text))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def clean_code(text: str | None) -> str:
    """Like ``clean`` but keeps indentation: in code, leading spaces carry meaning."""
    if not text:
        return ""
    text = _normalise(text).expandtabs(4)
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines).rstrip()


def one_line(text: str | None) -> str:
    """A cleaned string on a single line, for table cells and list items."""
    if not text:
        return ""
    # Fast path for the common spreadsheet cell: nothing to clean.
    if text.isascii() and text.isprintable() and "  " not in text and text.strip() == text:
        return text
    return " ".join(clean(text).split("\n")).strip()


def table_block(rows: Iterable[Sequence[str | None]]) -> Block | None:
    """Render table rows as ``a | b | c`` lines; empty rows and trailing empty cells go."""
    lines = []
    for row in rows:
        cells = [one_line(cell) for cell in row]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            lines.append(" | ".join(cells))
    return Block("\n".join(lines), kind="table") if lines else None


def list_block(items: Iterable[tuple[int, str]], *, ordered: bool = False) -> Block | None:
    """Render ``(depth, text)`` items as one indented, bulleted block."""
    lines = []
    number = 0
    for depth, text in items:
        text = one_line(text)
        if not text:
            continue
        number += 1
        marker = f"{number}." if ordered and depth == 0 else "-"
        lines.append(f"{'  ' * depth}{marker} {text}")
    return Block("\n".join(lines), kind="list") if lines else None


def sections(blocks: Iterable[Block], *, per_unit: int = SECTION_BLOCKS) -> Iterator[Unit]:
    """Group a flat block stream into numbered sections.

    A new section starts at a top-level heading (unless the current one holds only
    headings and page headers, so a title stays with its first chapter) or after
    ``per_unit`` blocks.
    """
    current: list[Block] = []
    number = 0
    for block in blocks:
        if not block.text:
            continue
        top_heading = block.kind == "heading" and block.level == 1
        only_headings = all(b.kind in ("heading", "title", "header") for b in current)
        if current and (len(current) >= per_unit or (top_heading and not only_headings)):
            number += 1
            yield Unit(number=number, kind="section", blocks=current)
            current = []
        current.append(block)
    if current:
        yield Unit(number=number + 1, kind="section", blocks=current)


def checked_units(units: Iterable[Unit], limits: Limits, *, label: str) -> Iterator[Unit]:
    """Enforce the character limit and turn library crashes into a clear ``DocumentError``.

    Units are produced lazily, so a damaged part deep in a file fails here, mid-iteration;
    the job must still see a message naming the format, not a raw traceback.
    """
    total = 0
    iterator = iter(units)
    while True:
        try:
            unit = next(iterator)
        except StopIteration:
            return
        except DocumentError:
            raise
        except RecursionError as exc:
            raise DocumentError(f"{label} file is nested too deeply to read") from exc
        except Exception as exc:
            raise DocumentError(f"{label} file is damaged: {describe(exc)}") from exc
        total += sum(len(block.text) for block in unit.blocks)
        if total > limits.max_characters:
            raise DocumentError(
                f"{label} file has more than {limits.max_characters:,} characters of text",
                code="too_many_characters",
            )
        yield unit


def describe(exc: BaseException) -> str:
    """A short, single-line reason from a library exception, for error messages."""
    message = str(exc).strip().split("\n")[0][:200]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- plain text and Markdown ----------------------------------------------------------------

_MAX_HEADING_LINE = 1_000
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+\S")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")


def read(path: Path, limits: Limits, *, markdown: bool | None = None) -> Document:
    """Open a text or Markdown file; ``markdown=None`` decides from the content."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        raise DocumentError("File is empty", code="empty_file")
    encoding = guess_encoding(head)
    if encoding is None:
        raise DocumentError("File is not text: it contains binary data", code="unsupported_type")
    sample = head.decode(encoding, errors="ignore")
    if markdown is None:
        markdown = looks_like_markdown(sample)
    label = "Markdown" if markdown else "Text"

    def lines() -> Iterator[str]:
        # newline=None turns \r\n and lone \r into \n as it reads.
        with path.open(encoding=encoding, errors="replace", newline=None) as handle:
            yield from _bounded_lines(handle)

    blocks = _markdown_blocks(lines()) if markdown else _text_blocks(lines())
    return Document(
        format="markdown" if markdown else "text",
        unit_count=None,
        units=checked_units(sections(blocks), limits, label=label),
        title=_markdown_title(sample) if markdown else None,
    )


def _markdown_title(sample: str) -> str | None:
    for line in sample.split("\n")[:200]:
        match = _ATX.match(line) if len(line) <= _MAX_HEADING_LINE else None
        if match and len(match.group(1)) == 1 and match.group(2):
            return clean(match.group(2)) or None
    return None


def _bounded_lines(handle: TextIO) -> Iterator[str]:
    """Lines of at most ``MAX_BLOCK_CHARS``: a longer one is cut at a space, so a file
    with no line breaks at all is still read in bounded pieces."""
    carry = ""
    while piece := handle.readline(MAX_BLOCK_CHARS - len(carry)):
        piece, carry = carry + piece, ""
        if not piece.endswith("\n") and len(piece) >= MAX_BLOCK_CHARS:
            cut = piece.rfind(" ", MAX_BLOCK_CHARS // 2)
            if cut > 0:
                piece, carry = piece[:cut], piece[cut + 1 :]
        yield piece
    if carry:
        yield carry


def _text_blocks(lines: Iterable[str]) -> Iterator[Block]:
    """Paragraphs split on blank lines, line breaks kept (plain text has no soft wraps
    we could tell from hard ones)."""
    buffer: list[str] = []
    size = 0
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            if buffer:
                yield Block(clean("\n".join(buffer)))
                buffer, size = [], 0
            continue
        if buffer and size + len(line) > MAX_BLOCK_CHARS:
            yield Block(clean("\n".join(buffer)))
            buffer, size = [], 0
        buffer.append(line)
        size += len(line)
    if buffer:
        yield Block(clean("\n".join(buffer)))


def _markdown_blocks(lines: Iterable[str]) -> Iterator[Block]:
    """Headings (ATX and setext), fenced code as one block, lists, pipe tables, paragraphs."""
    buffer: list[str] = []
    size = 0
    fence: str | None = None
    code: list[str] = []
    code_size = 0

    def flush() -> Iterator[Block]:
        nonlocal buffer, size
        if buffer:
            yield _markdown_paragraph(buffer)
        buffer, size = [], 0

    for raw in lines:
        line = raw.rstrip("\n")
        if fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                yield Block(clean_code("\n".join(code)))
                fence, code, code_size = None, [], 0
            else:
                code.append(line)
                code_size += len(line)
                # An unterminated fence must not swallow the rest of the file as one block.
                if code_size >= MAX_BLOCK_CHARS:
                    yield Block(clean_code("\n".join(code)))
                    code, code_size = [], 0
            continue
        if not line.strip():
            yield from flush()
            continue
        fence_match = _FENCE.match(line)
        if fence_match:
            yield from flush()
            fence = fence_match.group(1)
            continue
        # Headings are short; bounding the line keeps the heading pattern linear.
        atx = _ATX.match(line) if len(line) <= _MAX_HEADING_LINE else None
        if atx:
            yield from flush()
            text = clean(atx.group(2))
            if text:
                yield Block(text, kind="heading", level=len(atx.group(1)))
            continue
        setext = _SETEXT.match(line) if len(line) <= _MAX_HEADING_LINE else None
        if setext and not buffer:
            continue  # a thematic break (---) between paragraphs: no text
        if setext and not _LIST_ITEM.match(buffer[0]):
            text = one_line(" ".join(buffer))
            buffer, size = [], 0
            if text:
                yield Block(text, kind="heading", level=1 if setext.group(1)[0] == "=" else 2)
            continue
        if buffer and size + len(line) > MAX_BLOCK_CHARS:
            yield from flush()
        buffer.append(line)
        size += len(line)
    yield from flush()
    if code:
        yield Block(clean_code("\n".join(code)))


def _markdown_paragraph(lines: list[str]) -> Block:
    if _LIST_ITEM.match(lines[0]):
        return Block(clean("\n".join(lines)), kind="list")
    if all(line.lstrip().startswith("|") for line in lines):
        rows = [line.strip().strip("|").split("|") for line in lines if not _TABLE_RULE.match(line)]
        block = table_block(rows)
        if block:
            return block
    # Markdown wraps paragraphs softly: a single newline inside one is a space.
    return Block(one_line(" ".join(lines)))
