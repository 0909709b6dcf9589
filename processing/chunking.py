"""Cut a document into memories along its own structure.

A chunk never crosses a page, slide or sheet (so a hit cites one page), starts afresh at
a heading, and otherwise gathers whole paragraphs toward the target size. A paragraph
longer than the target is cut at sentence ends, then at spaces, never inside a word. Each
chunk after the first in a unit repeats the tail of the one before (``overlap``
characters, whole words) so a sentence cut at a boundary is still found whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from processing.documents.base import Block, Unit

_SENTENCE_END = re.compile(r"(?<=[.!?…:;])\s+")


@dataclass
class Chunk:
    text: str
    unit: int
    unit_kind: str
    blocks: tuple[int, int]  # first and last block index within the unit (inclusive)
    heading: str | None = None
    ocr: bool = False
    # Characters at the start repeated from the previous chunk.
    overlap: int = 0

    def position(self) -> dict[str, Any]:
        position: dict[str, Any] = {
            self.unit_kind: self.unit,
            "blocks": list(self.blocks),
        }
        if self.heading:
            position["heading"] = self.heading
        if self.ocr:
            position["ocr"] = True
        return position


@dataclass
class _Piece:
    text: str
    block: int
    heading: bool = False


@dataclass
class _Builder:
    size: int
    overlap: int
    unit: Unit
    pieces: list[_Piece] = field(default_factory=list)
    length: int = 0
    heading: str | None = None
    carry: str = ""

    def add(self, piece: _Piece) -> Iterator[Chunk]:
        extra = len(piece.text) + (2 if self.pieces else 0)
        if self.pieces and self.length + extra > self.size:
            yield from self.flush()
        self.pieces.append(piece)
        self.length += extra

    def flush(self, *, carry: bool = True) -> Iterator[Chunk]:
        if not self.pieces:
            return
        body = "\n\n".join(p.text for p in self.pieces)
        text = f"{self.carry}\n\n{body}" if self.carry else body
        yield Chunk(
            text=text,
            unit=self.unit.number,
            unit_kind=self.unit.kind,
            blocks=(self.pieces[0].block, self.pieces[-1].block),
            heading=self.heading,
            ocr=self.unit.ocr,
            overlap=len(self.carry),
        )
        self.carry = tail(body, self.overlap) if carry else ""
        self.pieces = []
        self.length = len(self.carry)


def chunk_unit(unit: Unit, *, size: int, overlap: int, heading: str | None = None) -> list[Chunk]:
    """The chunks of one unit. ``heading`` is the section heading still in force from an
    earlier unit (a chapter spanning pages), recorded in each chunk's position."""
    size = max(size, 100)
    overlap = max(0, min(overlap, size // 2))
    builder = _Builder(size=size, overlap=overlap, unit=unit, heading=heading)
    chunks: list[Chunk] = []
    for index, block in enumerate(unit.blocks):
        text = block.text.strip()
        if not text or _page_furniture(unit, block):
            continue
        if _starts_section(block):
            chunks.extend(builder.flush(carry=False))
            builder.heading = text[:200]
            chunks.extend(builder.add(_Piece(text, index, heading=True)))
            continue
        for part in split_text(text, size):
            chunks.extend(builder.add(_Piece(part, index)))
    chunks.extend(builder.flush())
    return chunks


def last_heading(unit: Unit, current: str | None) -> str | None:
    """The heading in force after this unit, for the chunks of the next."""
    for block in unit.blocks:
        if _starts_section(block) and block.text.strip():
            current = block.text.strip()[:200]
    return current


def _page_furniture(unit: Unit, block: Block) -> bool:
    """A page's running header or footer (a page number, the chapter name): noise in every
    memory of the page. A DOCX's headers come once per document and carry text: kept."""
    return unit.kind == "page" and block.kind in ("header", "footer")


def _starts_section(block: Block) -> bool:
    return block.kind in ("heading", "title")


def split_text(text: str, size: int) -> list[str]:
    """Cut a paragraph longer than ``size`` at sentence ends, then at spaces."""
    if len(text) <= size:
        return [text]
    parts: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        for piece in _split_words(sentence, size):
            if current and len(current) + 1 + len(piece) > size:
                parts.append(current)
                current = piece
            else:
                current = f"{current} {piece}" if current else piece
    if current:
        parts.append(current)
    return parts


def _split_words(sentence: str, size: int) -> list[str]:
    if len(sentence) <= size:
        return [sentence]
    parts: list[str] = []
    current = ""
    for word in sentence.split():
        if len(word) > size:  # no space to cut at: a URL or a run of symbols
            if current:
                parts.append(current)
                current = ""
            parts.extend(word[i : i + size] for i in range(0, len(word), size))
            continue
        if current and len(current) + 1 + len(word) > size:
            parts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        parts.append(current)
    return parts


def tail(text: str, limit: int) -> str:
    """At most ``limit`` characters from the end of ``text``, starting at a word."""
    if limit <= 0 or not text:
        return ""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    space = cut.find(" ")
    return cut[space + 1 :] if space != -1 else ""
