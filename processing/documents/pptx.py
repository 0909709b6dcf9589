"""PowerPoint presentations (PPTX) with python-pptx: one unit per slide.

Shapes are read top to bottom, then left to right, because the order in the XML is the
order they were drawn (z-order), which on a real slide is often far from reading order.
Charts contribute their title, series and category names from the chart part's cached
values; python-pptx's chart API does not know every chart type (3-D area charts raise),
the XML is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from lxml import etree
from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER
from pptx.shapes.base import BaseShape
from pptx.slide import Slide

from processing.documents.archive import xml_limit_error
from processing.documents.base import Block, Document, DocumentError, Limits, Unit
from processing.documents.text import checked_units, clean, describe, one_line, table_block

# Category labels beyond this many add nothing a reader would search for.
_MAX_CATEGORIES = 50
_NS = {
    "c": "http://schemas.openxmlformats.org/drawingml/2006/chart",
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
}
_TITLE_TYPES = (PP_PLACEHOLDER.TITLE, PP_PLACEHOLDER.CENTER_TITLE, PP_PLACEHOLDER.VERTICAL_TITLE)
_BULLET_TYPES = (PP_PLACEHOLDER.BODY, PP_PLACEHOLDER.OBJECT, PP_PLACEHOLDER.VERTICAL_BODY)
# Slide furniture repeated from the layout; its text (a date, "Page 3") is noise.
_SKIPPED_TYPES = (PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.SLIDE_NUMBER)


def read(path: Path, limits: Limits) -> Document:
    """Open the package now; each slide's part is parsed when its unit is read."""
    try:
        presentation = Presentation(str(path))
        slides = list(presentation.slides)
        title = clean(presentation.core_properties.title) or None
    except etree.XMLSyntaxError as exc:
        error = xml_limit_error(exc, "PPTX file")
        raise error or DocumentError(f"PPTX file cannot be opened: {describe(exc)}") from exc
    except Exception as exc:
        raise DocumentError(f"PPTX file cannot be opened: {describe(exc)}") from exc
    return Document(
        format="pptx",
        unit_count=len(slides),
        units=checked_units(_units(slides), limits, label="PPTX"),
        title=title,
    )


def _units(slides: list[Slide]) -> Iterator[Unit]:
    for number, slide in enumerate(slides, start=1):
        try:
            blocks = list(_slide_blocks(slide))
        except DocumentError:
            raise
        except Exception as exc:
            raise DocumentError(
                f"PPTX file is damaged: slide {number} cannot be read ({describe(exc)})"
            ) from exc
        yield Unit(number=number, kind="slide", blocks=[b for b in blocks if b.text])


def _slide_blocks(slide: Slide) -> Iterator[Block]:
    title_shape = slide.shapes.title
    if title_shape is not None and title_shape.has_text_frame:
        yield Block(one_line(title_shape.text_frame.text), kind="title")
    skip = {title_shape.shape_id} if title_shape is not None else set()
    yield from _shapes_blocks(slide.shapes, skip)
    if slide.has_notes_slide:
        notes_frame = slide.notes_slide.notes_text_frame
        if notes_frame is not None:
            yield Block(clean(notes_frame.text), kind="notes")


def _reading_order(shapes: Iterable[BaseShape]) -> list[BaseShape]:
    return sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))


def _shapes_blocks(shapes: Iterable[BaseShape], skip: set[int]) -> Iterator[Block]:
    for shape in _reading_order(shapes):
        if shape.shape_id in skip:
            continue
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes_blocks(shape.shapes, skip)
        elif getattr(shape, "has_table", False) and shape.has_table:
            block = _table(shape)
            if block:
                yield block
        elif getattr(shape, "has_chart", False) and shape.has_chart:
            block = _chart(shape)
            if block:
                yield block
        elif shape.has_text_frame:
            block = _text_frame(shape)
            if block:
                yield block


def _text_frame(shape: BaseShape) -> Block | None:
    """A text frame's paragraphs as lines; bulleted body placeholders as an indented list."""
    placeholder_type = shape.placeholder_format.type if shape.is_placeholder else None
    if placeholder_type in _SKIPPED_TYPES:
        return None
    paragraphs = [(p.level, one_line(p.text)) for p in shape.text_frame.paragraphs]
    paragraphs = [(level, text) for level, text in paragraphs if text]
    if not paragraphs:
        return None
    if placeholder_type in _TITLE_TYPES:
        return Block(" ".join(text for _, text in paragraphs), kind="title")
    if placeholder_type in _BULLET_TYPES and len(paragraphs) > 1:
        lines = [f"{'  ' * level}- {text}" for level, text in paragraphs]
        return Block("\n".join(lines), kind="list")
    return Block("\n".join(text for _, text in paragraphs))


def _table(shape: BaseShape) -> Block | None:
    """Rows as ``a | b | c``; cells covered by a merge are left out, not repeated."""
    rows = []
    for row in shape.table.rows:
        rows.append([cell.text for cell in row.cells if not cell.is_spanned])
    return table_block(rows)


_CHART_TITLE = etree.XPath("c:chart/c:title//a:t/text()", namespaces=_NS)
_SERIES_NAMES = etree.XPath("c:chart/c:plotArea/*/c:ser/c:tx//c:v/text()", namespaces=_NS)
_FIRST_SERIES = etree.XPath("(c:chart/c:plotArea/*/c:ser)[1]", namespaces=_NS)
# Text categories only: numeric ones are serial dates or x values, not words.
_CATEGORIES = etree.XPath(
    "c:cat/c:strRef//c:pt/c:v/text() | c:cat/c:strLit//c:pt/c:v/text()"
    " | c:cat/c:multiLvlStrRef//c:pt/c:v/text()",
    namespaces=_NS,
)


def _chart(shape: BaseShape) -> Block | None:
    space = shape.chart._chartSpace
    title = one_line(" ".join(_CHART_TITLE(space)))
    series = _unique(_SERIES_NAMES(space))
    first = _FIRST_SERIES(space)
    categories = _unique(_CATEGORIES(first[0]))[:_MAX_CATEGORIES] if first else []
    lines = [f"Chart: {title}" if title else "Chart"]
    if series:
        lines.append("Series: " + ", ".join(series))
    if categories:
        lines.append("Categories: " + ", ".join(categories))
    return Block("\n".join(lines)) if len(lines) > 1 or title else None


def _unique(values: Iterable[object]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        text = one_line(str(value))
        if text:
            seen.setdefault(text, None)
    return list(seen)
