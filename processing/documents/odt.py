"""OpenDocument text (ODT, LibreOffice's own format): headings, paragraphs, lists, tables.

There is no permissively licensed ODF library worth a dependency for reading text, and the
format is plain XML: ``content.xml`` is read with a capped inflate and parsed with a parser
that resolves no entities and never touches the network.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from processing.documents.archive import parse_xml, read_member
from processing.documents.base import Block, Document, DocumentError, Limits
from processing.documents.text import (
    checked_units,
    clean,
    list_block,
    one_line,
    sections,
    table_block,
)

_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_DC = "http://purl.org/dc/elements/1.1/"


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


_H, _P, _LIST, _LIST_ITEM = (
    _q(_TEXT, "h"),
    _q(_TEXT, "p"),
    _q(_TEXT, "list"),
    _q(_TEXT, "list-item"),
)
_LIST_HEADER, _SECTION = _q(_TEXT, "list-header"), _q(_TEXT, "section")
_TABLE_EL, _ROW, _CELL = _q(_TABLE, "table"), _q(_TABLE, "table-row"), _q(_TABLE, "table-cell")
_ANNOTATION = _q(_OFFICE, "annotation")
# Inline elements whose content is not part of the running text.
_SKIPPED_INLINE = {
    _q(_TEXT, "note"),  # footnotes: a citation number glued to a word otherwise
    _q(_OFFICE, "annotation"),  # comments: emitted as their own blocks
    _q(_OFFICE, "annotation-end"),
    _q(_TEXT, "bookmark-ref"),
}
# Generated indexes repeat the headings they list.
_SKIPPED_BLOCKS = {
    _q(_TEXT, name)
    for name in ("table-of-content", "alphabetical-index", "illustration-index",
                 "table-index", "object-index", "user-index", "bibliography")
}  # fmt: skip
_TABLE_GROUPS = {
    _q(_TABLE, name) for name in ("table-header-rows", "table-rows", "table-row-group")
}


def read(path: Path, limits: Limits) -> Document:
    """Parse ``content.xml`` now (it is one part); sections are cut from it on demand."""
    try:
        with zipfile.ZipFile(path) as archive:
            content = parse_xml(
                read_member(archive, "content.xml", limits.max_unzipped_bytes, label="ODT"),
                what="ODT content.xml",
            )
            title = _title(archive, limits)
    except DocumentError:
        raise
    except (zipfile.BadZipFile, OSError) as exc:
        raise DocumentError("ODT file is not a valid ZIP archive") from exc
    body = content.find(f"{_q(_OFFICE, 'body')}/{_q(_OFFICE, 'text')}")
    if body is None:
        raise DocumentError("ODT file has no text body (is it a spreadsheet or drawing?)")
    return Document(
        format="odt",
        unit_count=None,
        units=checked_units(sections(_blocks(body)), limits, label="ODT"),
        title=title,
    )


def _title(archive: zipfile.ZipFile, limits: Limits) -> str | None:
    if "meta.xml" not in archive.namelist():
        return None
    meta = parse_xml(
        read_member(archive, "meta.xml", limits.max_unzipped_bytes, label="ODT"),
        what="ODT meta.xml",
    )
    title = meta.find(f".//{_q(_DC, 'title')}")
    if title is None:
        return None
    return one_line(title.text) or None


def _blocks(container: etree._Element) -> Iterator[Block]:
    for element in container:
        tag = element.tag
        if tag == _H:
            level = element.get(_q(_TEXT, "outline-level")) or "1"
            level_number = int(level) if level.isdigit() and 0 < int(level) <= 10 else 1
            yield Block(one_line(_text(element)), kind="heading", level=level_number)
            yield from _annotations(element)
        elif tag == _P:
            yield Block(clean(_text(element)))
            yield from _annotations(element)
        elif tag == _LIST:
            block = list_block(_list_items(element, 0))
            if block:
                yield block
        elif tag == _TABLE_EL:
            block = table_block(_rows(element))
            if block:
                yield block
        elif tag in _SKIPPED_BLOCKS:
            continue
        elif tag == _SECTION or len(element):
            yield from _blocks(element)


def _text(element: etree._Element) -> str:
    """Running text, with ODF's space, tab and line-break elements expanded."""
    parts = [element.text or ""]
    for child in element:
        tag = child.tag
        if tag == _q(_TEXT, "s"):
            count = child.get(_q(_TEXT, "c")) or "1"
            parts.append(" " * min(int(count) if count.isdigit() else 1, 100))
        elif tag == _q(_TEXT, "tab"):
            parts.append("\t")
        elif tag == _q(_TEXT, "line-break"):
            parts.append("\n")
        elif tag not in _SKIPPED_INLINE and isinstance(tag, str):
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _annotations(paragraph: etree._Element) -> Iterator[Block]:
    for annotation in paragraph.iter(_ANNOTATION):
        author = annotation.find(_q(_DC, "creator"))
        text = clean("\n".join(_text(p) for p in annotation.iter(_P)))
        name = one_line(author.text) if author is not None else ""
        if text:
            yield Block(f"{name}: {text}" if name else text, kind="comment")


def _list_items(element: etree._Element, depth: int) -> Iterator[tuple[int, str]]:
    for item in element:
        if item.tag not in (_LIST_ITEM, _LIST_HEADER):
            continue
        for child in item:
            if child.tag in (_P, _H):
                yield depth, _text(child)
            elif child.tag == _LIST:
                yield from _list_items(child, depth + 1)


def _rows(table: etree._Element) -> Iterator[list[str]]:
    """Rows once each and cells once each: ``number-rows-repeated`` and
    ``number-columns-repeated`` describe layout (often thousands of empty cells), and a
    covered (merged-away) cell is a different element that is simply not read."""
    for row in _table_rows(table):
        yield [" ".join(_text(p) for p in cell.iter(_P, _H)) for cell in row.iterchildren(_CELL)]


def _table_rows(container: etree._Element) -> Iterator[etree._Element]:
    for child in container:
        if child.tag == _ROW:
            yield child
        elif child.tag in _TABLE_GROUPS:
            yield from _table_rows(child)
