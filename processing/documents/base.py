"""What every document extractor returns, so chunking, progress and positions work the
same for a PDF page, a slide or a spreadsheet sheet.

An extractor turns bytes into ``Unit``s (a page, a slide, a sheet, or a run of
paragraphs for formats without pages) made of ``Block``s (a heading, a paragraph, a table
rendered as readable rows, speaker notes...). Units are produced lazily so the job can
report progress and honour a cancel between them, and so a 20,000-page file is refused at
its limit instead of being read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from jobs.api.base import JobError

BlockKind = Literal[
    "heading", "paragraph", "list", "table", "title", "notes", "header", "footer", "comment"
]
UnitKind = Literal["page", "slide", "sheet", "section"]


@dataclass(frozen=True)
class Block:
    text: str
    kind: BlockKind = "paragraph"
    # Heading depth (1 = top level); 0 for everything that is not a heading.
    level: int = 0


@dataclass
class Unit:
    """One page, slide, sheet or section: the grain of progress, cancel and positions."""

    number: int  # 1-based
    kind: UnitKind
    blocks: list[Block]
    # True when the text came from OCR (a page with no text layer).
    ocr: bool = False

    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks if block.text)


@dataclass
class Document:
    """An opened, checked document whose units are read on demand."""

    format: str  # pdf, docx, pptx, xlsx, odt, epub, html, text, markdown
    unit_count: int | None  # known up front for pages/slides/sheets, else None
    units: Iterator[Unit]
    title: str | None = None
    warnings: list[str] = field(default_factory=list)


class DocumentError(JobError):
    """The file cannot be processed: a permanent failure with a specific message."""

    code = "document_invalid"
    retryable = False


@dataclass(frozen=True)
class Limits:
    """Bounds on one document; the defaults come from settings (``limits_from_settings``)."""

    max_bytes: int = 200 * 1024 * 1024
    max_pages: int = 2_000
    max_unzipped_bytes: int = 200 * 1024 * 1024
    # An XML part of a ZIP-based format that is parsed whole (all of them but XLSX's
    # sheets and shared strings, which stream) costs 15-30 times its size as a tree: past
    # this, it is refused by name instead of failing inside lxml once memory runs out.
    max_xml_part_bytes: int = 48 * 1024 * 1024
    max_characters: int = 20_000_000
    ocr: bool = True
    ocr_languages: str = "eng+deu"
