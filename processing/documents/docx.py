"""Word documents (DOCX) with python-docx.

Word files have no reliable pages (pagination happens in the renderer), so the body is cut
into sections at top-level headings or every ``SECTION_BLOCKS`` blocks. Headers, footers
and comments are kept because they often carry what a search will look for (a document
number in a footer, a reviewer's remark), but each distinct header text only once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from docx.comments import Comment
from docx.document import Document as WordDocument
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.part import PartFactory
from docx.oxml.ns import qn
from docx.package import Package
from docx.parts.document import DocumentPart
from docx.styles.style import BaseStyle
from docx.text.paragraph import Paragraph
from lxml import etree

from processing.documents.archive import parse_xml, xml_limit_error
from processing.documents.base import Block, Document, DocumentError, Limits
from processing.documents.text import (
    checked_units,
    clean,
    describe,
    list_block,
    one_line,
    sections,
    table_block,
)

# python-docx maps only the plain .docx main part to a DocumentPart; templates and
# macro-enabled files have the same body, so they are read the same way.
_MAIN_CONTENT_TYPES = (
    CT.WML_DOCUMENT_MAIN,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.ms-word.document.macroEnabled.main+xml",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
)
for _content_type in _MAIN_CONTENT_TYPES:
    PartFactory.part_type_for.setdefault(_content_type, DocumentPart)

_HEADING_STYLE = re.compile(r"heading\s*([1-9])$", re.IGNORECASE)
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_P, _TBL, _SDT, _SDT_CONTENT = qn("w:p"), qn("w:tbl"), qn("w:sdt"), qn("w:sdtContent")
_CUSTOM_XML, _TR, _TC, _VAL = qn("w:customXml"), qn("w:tr"), qn("w:tc"), qn("w:val")
_T, _TAB, _BR = qn("w:t"), qn("w:tab"), qn("w:br")


def read(path: Path, limits: Limits) -> Document:
    """Open the package now (it is parsed whole); sections are built as they are read."""
    try:
        part = Package.open(str(path)).main_document_part
        if part.content_type not in _MAIN_CONTENT_TYPES:
            raise DocumentError(
                f"DOCX file's main part is not a Word document ({part.content_type})"
            )
        document: WordDocument = part.document
        title = clean(document.core_properties.title) or None
    except DocumentError:
        raise
    except etree.XMLSyntaxError as exc:
        error = xml_limit_error(exc, "DOCX file")
        raise error or DocumentError(f"DOCX file cannot be opened: {describe(exc)}") from exc
    except Exception as exc:
        raise DocumentError(f"DOCX file cannot be opened: {describe(exc)}") from exc
    return Document(
        format="docx",
        unit_count=None,
        units=checked_units(sections(_blocks(document)), limits, label="DOCX"),
        title=title,
    )


def _blocks(document: WordDocument) -> Iterator[Block]:
    headers, footers = _headers_and_footers(document)
    yield from headers
    yield from _Body(document).blocks()
    yield from footers


class _Body:
    """Walks the body in document order, grouping list paragraphs and placing each comment
    right after the paragraph it is anchored to."""

    def __init__(self, document: WordDocument) -> None:
        self._document = document
        self._parent = document._body
        self._comments = _comments_by_id(document)
        self._emitted_comments: set[str] = set()
        self._notes = _notes_by_reference(document)
        self._emitted_notes: set[tuple[str, str]] = set()
        self._list: list[tuple[int, str]] = []
        self._pending: list[Block] = []
        # python-docx resolves a paragraph's style by scanning every style, per paragraph;
        # documents use a handful of styles, so resolve each once.
        self._styles: dict[str | None, tuple[int, int | None]] = {}

    def blocks(self) -> Iterator[Block]:
        for element in _block_elements(self._document.element.body):
            if element.tag == _TBL:
                yield from self._flush_list()
                block = _table(element, self._parent)
                if block:
                    yield block
                yield from self._pending_comments()
            else:
                yield from self._paragraph(Paragraph(element, self._parent))
        yield from self._flush_list()
        # Comments and notes whose anchor we did not see (in a header, or a damaged range)
        # go last.
        for comment_id, comment in self._comments.items():
            if comment_id not in self._emitted_comments:
                yield _comment_block(comment)
        for reference, text in self._notes.items():
            if reference not in self._emitted_notes:
                yield Block(text, kind="notes")

    def _paragraph(self, paragraph: Paragraph) -> Iterator[Block]:
        self._queue_comments(paragraph)
        text = clean(paragraph.text)
        style_id = paragraph._p.style
        if style_id not in self._styles:
            self._styles[style_id] = _style_meaning(paragraph.style)
        style_level, style_depth = self._styles[style_id]
        p_pr = paragraph._p.pPr
        depth = _numbering_depth(p_pr, style_depth)
        if depth is not None:
            if text:
                self._list.append((depth, text))
        else:
            yield from self._flush_list()
            level = _outline_level(p_pr) or style_level
            if level:
                yield Block(one_line(text), kind="heading", level=level)
            else:
                yield Block(text)
        # Text boxes hang off a paragraph but are not part of its text.
        for box_paragraph in _text_box_paragraphs(paragraph):
            yield from self._flush_list()
            yield Block(clean(Paragraph(box_paragraph, self._parent).text))
        if depth is None:
            yield from self._pending_comments()

    def _flush_list(self) -> Iterator[Block]:
        if self._list:
            block = list_block(self._list)
            self._list = []
            if block:
                yield block
            yield from self._pending_comments()

    def _queue_comments(self, paragraph: Paragraph) -> None:
        """Comments, footnotes and endnotes come right after the paragraph citing them."""
        for reference in paragraph._p.iter(qn("w:commentReference")):
            comment_id = reference.get(qn("w:id"))
            comment = self._comments.get(comment_id or "")
            if comment is not None and comment_id not in self._emitted_comments:
                self._emitted_comments.add(comment_id)
                self._pending.append(_comment_block(comment))
        for kind, tag in _NOTE_REFERENCES:
            for reference in paragraph._p.iter(tag):
                key = (kind, reference.get(qn("w:id")) or "")
                if key in self._notes and key not in self._emitted_notes:
                    self._emitted_notes.add(key)
                    self._pending.append(Block(self._notes[key], kind="notes"))

    def _pending_comments(self) -> Iterator[Block]:
        yield from self._pending
        self._pending = []


def _block_elements(container: etree._Element) -> Iterator[etree._Element]:
    """Paragraphs and tables in order, looking through content controls and custom XML."""
    for child in container:
        if child.tag in (_P, _TBL):
            yield child
        elif child.tag == _SDT:
            for content in child.iterchildren(_SDT_CONTENT):
                yield from _block_elements(content)
        elif child.tag == _CUSTOM_XML:
            yield from _block_elements(child)


def _style_meaning(style: BaseStyle | None) -> tuple[int, int | None]:
    """(heading level, list depth) a paragraph style gives its paragraphs: Heading 1-9 and
    Title by name, following the based-on chain, or the outline level custom heading
    styles carry; list styles ("List Bullet 2") by name, whose number is the depth."""
    name = " ".join((style.name or "").lower().split()) if style is not None else ""
    depth = None
    if name.startswith("list ") and not name.startswith("list table"):
        last = name.rsplit(" ", 1)[-1]
        depth = int(last) - 1 if len(last) == 1 and last in "123456789" else 0
    for _ in range(10):  # a cycle in based-on links must not hang us
        if style is None:
            break
        name = (style.name or "").strip()
        if name.lower() == "title":
            return 1, depth
        match = _HEADING_STYLE.match(name)
        if match:
            return int(match.group(1)), depth
        level = _outline_level(style.element.pPr)
        if level:
            return level, depth
        style = style.base_style
    return 0, depth


def _outline_level(p_pr: etree._Element | None) -> int:
    if p_pr is None:
        return 0
    outline = p_pr.find(qn("w:outlineLvl"))
    if outline is None:
        return 0
    try:
        value = int(outline.get(_VAL, "9"))
    except ValueError:
        return 0
    return value + 1 if 0 <= value < 9 else 0  # 9 means "body text"


def _numbering_depth(p_pr: etree._Element | None, style_depth: int | None) -> int | None:
    """Nesting depth for a list paragraph (numbered or bulleted), else None."""
    num_pr = p_pr.find(qn("w:numPr")) if p_pr is not None else None
    if num_pr is None:
        return style_depth
    num_id = num_pr.find(qn("w:numId"))
    if num_id is not None and num_id.get(_VAL) == "0":
        return None  # numId 0 switches numbering off
    level = num_pr.find(qn("w:ilvl"))
    try:
        return int(level.get(_VAL, "0")) if level is not None else 0
    except ValueError:
        return 0


def _text_box_paragraphs(paragraph: Paragraph) -> Iterator[etree._Element]:
    # A text box appears twice (DrawingML and a VML fallback); read the first only.
    for box in paragraph._p.iter(qn("w:txbxContent")):
        if next(box.iterancestors(_MC_FALLBACK), None) is None:
            yield from box.iter(_P)


def _table(table: etree._Element, parent: object) -> Block | None:
    """Rows as ``a | b | c``; a vertically merged cell is shown once, horizontally merged
    cells are one ``w:tc`` already, nested tables are flattened into their cell."""
    rows = []
    for row in table.iter(_TR):
        if next(row.iterancestors(_TBL), None) is not table:
            continue
        cells = []
        for cell in row.iter(_TC):
            if next(cell.iterancestors(_TR), None) is not row:
                continue
            merge = cell.find(f"{qn('w:tcPr')}/{qn('w:vMerge')}")
            if merge is not None and merge.get(_VAL) != "restart":
                cells.append("")
                continue
            cells.append(" ".join(Paragraph(p, parent).text for p in cell.iter(_P)))
        rows.append(cells)
    return table_block(rows)


def _headers_and_footers(document: WordDocument) -> tuple[list[Block], list[Block]]:
    """Distinct header and footer texts over all sections (first-page and even-page
    variants included); a linked header is the previous section's and is not repeated."""
    seen: set[tuple[str, str]] = set()
    headers: list[Block] = []
    footers: list[Block] = []
    for section in document.sections:
        variants = (
            ("header", section.header),
            ("header", section.first_page_header),
            ("header", section.even_page_header),
            ("footer", section.footer),
            ("footer", section.first_page_footer),
            ("footer", section.even_page_footer),
        )
        for kind, part in variants:
            if part.is_linked_to_previous:
                continue
            lines = [
                Paragraph(p, part).text
                for p in part._element.iter(_P)
                if next(p.iterancestors(_MC_FALLBACK), None) is None
            ]
            text = clean("\n".join(lines))
            if text and (kind, text) not in seen:
                seen.add((kind, text))
                (headers if kind == "header" else footers).append(Block(text, kind=kind))
    return headers, footers


def _comments_by_id(document: WordDocument) -> dict[str, Comment]:
    try:
        comments = document.comments
    except (KeyError, ValueError, AttributeError) as exc:
        raise DocumentError(f"DOCX file's comments cannot be read: {describe(exc)}") from exc
    return {str(comment.comment_id): comment for comment in comments}


_NOTE_REFERENCES = (
    ("footnote", qn("w:footnoteReference")),
    ("endnote", qn("w:endnoteReference")),
)
# Word's own notes: the lines between the body and the notes, not text anyone wrote.
_SEPARATOR_NOTES = {"separator", "continuationSeparator", "continuationNotice"}


def _notes_by_reference(document: WordDocument) -> dict[tuple[str, str], str]:
    """Footnote and endnote texts by (``footnote``/``endnote``, id). python-docx has no
    notes API: the parts are found through the main part's relationships and parsed with
    the same entity-refusing parser as every other part."""
    notes: dict[tuple[str, str], str] = {}
    for rel in document.part.rels.values():
        kind = {RT.FOOTNOTES: "footnote", RT.ENDNOTES: "endnote"}.get(rel.reltype)
        if kind is None or rel.is_external:
            continue
        root = parse_xml(rel.target_part.blob, what=f"DOCX {kind}s")
        for note in root.iterchildren(qn(f"w:{kind}")):
            if note.get(qn("w:type")) in _SEPARATOR_NOTES:
                continue
            text = clean("\n".join(_plain_text(p) for p in note.iter(_P)))
            if text:
                notes[(kind, note.get(qn("w:id")) or "")] = text
    return notes


def _plain_text(paragraph: etree._Element) -> str:
    """A paragraph's text from an element our own parser made (not python-docx's)."""
    parts = []
    for node in paragraph.iter(_T, _TAB, _BR):
        parts.append(node.text or "" if node.tag == _T else "\t" if node.tag == _TAB else "\n")
    return "".join(parts)


def _comment_block(comment: Comment) -> Block:
    author = one_line(comment.author)
    text = clean(comment.text)
    return Block(f"{author}: {text}" if author and text else text, kind="comment")
