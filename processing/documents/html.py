"""HTML documents: headings, paragraphs, lists, tables and code, without site chrome.

An uploaded HTML file is either an exported document (Word, Google Docs, pandoc) whose
every paragraph matters, or a saved web page whose menus, sidebars, cookie banners and
"related posts" would pollute search. The structural walk here keeps everything but the
obvious chrome elements; for pages that carry site chrome, what the web job keeps
(``processing.web.extract``: its main-content rules) decides which walked lines stay.
``html_blocks`` is also how EPUB chapters are read.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import lxml.html
from lxml import etree

from processing.documents.base import Block, Document, DocumentError, Limits
from processing.documents.detect import SNIFF_BYTES, guess_encoding
from processing.documents.text import (
    checked_units,
    clean,
    clean_code,
    list_block,
    one_line,
    sections,
    table_block,
)

logger = logging.getLogger(__name__)

# trafilatura's own default ceiling, and far beyond any real page: a 200 MB "HTML" upload
# is a data dump, and lxml would hold several times that in memory as a tree.
MAX_HTML_BYTES = 20 * 1024 * 1024
# A page with chrome must yield at least this much main text from trafilatura, or it
# probably misjudged the page, and the full walk is kept instead.
_MIN_MAIN_CHARS = 200

_DROP = frozenset(
    {
        "script", "style", "noscript", "template", "nav", "footer", "aside", "form",
        "button", "select", "option", "textarea", "input", "label", "iframe", "object",
        "embed", "svg", "math", "canvas", "map", "audio", "video", "dialog", "head",
        "title", "meta", "link", "base",
    }
)  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_CONTAINERS = frozenset(
    {
        "html", "body", "main", "article", "section", "div", "header", "hgroup", "address",
        "blockquote", "center", "details", "summary", "figure", "figcaption", "fieldset",
        "legend", "li", "dd", "dt", "td", "th", "tr", "tbody", "thead", "tfoot", "caption",
        "search",
    }
)  # fmt: skip
_BLOCKS = _CONTAINERS | _HEADINGS | {"p", "table", "ul", "ol", "dl", "pre", "hr"}
_CHROME_ROLES = ("navigation", "banner", "contentinfo", "complementary", "search")
_META_CHARSET = re.compile(
    rb"""(?:<meta[^>]+charset|<\?xml[^>]+encoding)\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I
)
# Lines shorter than this (after squashing) must match near the previous one.
_SHORT_LINE = 30
_SHORT_LINE_WINDOW = 300
_LIST_MARKER = re.compile(r"^\s*(?:-|\d+\.)\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def read(path: Path, limits: Limits) -> Document:
    """Open an HTML file; the tree is parsed now, units are cut from it on demand."""
    size = path.stat().st_size
    if size > MAX_HTML_BYTES:
        raise DocumentError(
            f"HTML file is larger than {MAX_HTML_BYTES // (1024 * 1024)} MB",
            code="file_too_large",
        )
    text = decode_html(path.read_bytes())
    root = parse_html(text, what="HTML file")
    title = _title(root)
    try:
        walked = html_blocks(root)
    except RecursionError as exc:
        raise DocumentError("HTML file is nested too deeply to read") from exc
    blocks = _main_content(text, root, walked)
    return Document(
        format="html",
        unit_count=None,
        units=checked_units(sections(blocks), limits, label="HTML"),
        title=title,
    )


def decode_html(data: bytes) -> str:
    """Decode as browsers do: BOM, then ``<meta charset>`` (or the XML declaration's
    encoding, for XHTML), then a guess from the bytes."""
    boms = (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    for bom, codec in boms:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    codec = None
    match = _META_CHARSET.search(data[:4096])
    if match:
        try:
            codec = codecs.lookup(match.group(1).decode("ascii")).name
        except LookupError:
            codec = None
        # Browsers read "latin-1" and "ascii" pages as windows-1252; so do the pages' authors.
        if codec in ("latin-1", "iso8859-1", "ascii"):
            codec = "cp1252"
    codec = codec or guess_encoding(data[:SNIFF_BYTES]) or "utf-8"
    return data.decode(codec, errors="replace")


def parse_html(text: str, *, what: str) -> lxml.html.HtmlElement:
    """Parse with lxml's HTML parser: no network, comments and PIs gone on the way in."""
    text = _XML_DECLARATION.sub("", text, count=1)
    if not text.strip():
        raise DocumentError(f"{what} is empty", code="empty_file")
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)
    try:
        return lxml.html.document_fromstring(text, parser=parser)
    except (etree.ParserError, ValueError) as exc:
        raise DocumentError(f"{what} cannot be parsed as HTML ({exc})") from exc


def _title(root: lxml.html.HtmlElement) -> str | None:
    for element in root.iter("title", "h1"):
        title = one_line(element.text_content())
        if title:
            return title
    return None


# --- choosing between the full walk and trafilatura -------------------------------------


def _main_content(text: str, root: lxml.html.HtmlElement, walked: list[Block]) -> list[Block]:
    """Exported documents keep every block (trafilatura would drop short paragraphs it
    takes for boilerplate); pages with site chrome get trafilatura's main content."""
    if not _has_site_chrome(root):
        return walked
    from processing.web.extract import extract_page  # the web job's main-content rules

    try:
        main = extract_page(text).blocks
    except DocumentError:
        return walked  # nothing reads as main text: keep the walk
    except Exception:  # trafilatura is a heuristic; when it trips, the walk still stands
        logger.warning("trafilatura failed on an HTML document", exc_info=True)
        return walked
    if sum(len(block.text) for block in main) < _MIN_MAIN_CHARS:
        return walked
    return _aligned(walked, main)


def _aligned(walked: list[Block], main: list[Block]) -> list[Block]:
    """The walked text that trafilatura kept, line by line (sentence by sentence where a
    walked line holds more than one of its paragraphs).

    trafilatura decides well *what* is main content but flattens *how* it looked (code
    blocks lose their line breaks, heading levels are guessed), while the walk keeps the
    page's own structure. Long pieces are looked up anywhere in trafilatura's text; short
    ones ("Home", "Share") only just after the previous match, so a menu word cannot latch
    onto the same word deep in the article. If the alignment recovers too little of
    trafilatura's text (the two disagree about the page), its own blocks are used instead.
    """
    aligner = _Aligner(" ".join(_match_key(ln) for b in main for ln in b.text.split("\n")))
    kept: list[Block] = []
    for block in walked:
        lines: list[str] = []
        for line in block.text.split("\n"):
            if not _match_key(line):
                if lines:
                    lines.append(line)  # a blank line inside a code block
                continue
            if aligner.find(line):
                lines.append(line)
            elif block.kind != "heading" and len(_match_key(line)) >= _SHORT_LINE:
                sentences = [part for part in _SENTENCE_END.split(line) if aligner.find(part)]
                if sentences:
                    lines.append(" ".join(sentences))
        text = "\n".join(lines).strip()
        if text:
            kept.append(Block(text, kind=block.kind, level=block.level))
    return kept if aligner.recovered >= 0.8 * aligner.size else main


class _Aligner:
    def __init__(self, target: str) -> None:
        self.target = target
        self.size = len(target.replace(" ", ""))
        self.cursor = 0
        self.recovered = 0

    def find(self, piece: str) -> bool:
        key = _match_key(piece)
        if not key:
            return False
        if len(key) >= _SHORT_LINE:
            found = self.target.find(key)
        else:
            end = self.cursor + len(key) + _SHORT_LINE_WINDOW
            found = self.target.find(key, self.cursor, end)
        if found < 0:
            return False
        self.cursor = max(self.cursor, found + len(key))
        self.recovered += len(key)
        return True


def _match_key(line: str) -> str:
    """A line reduced for matching: no list marker, no cell separators, no spacing."""
    line = _LIST_MARKER.sub("", line).replace(" | ", " ")
    return "".join(line.split()).casefold()


def _has_site_chrome(root: lxml.html.HtmlElement) -> bool:
    """Signs of a page saved from a website rather than a document exported to HTML."""
    if next(root.iter("nav", "aside", "footer"), None) is not None:
        return True
    for element in root.iter("script", "meta", "link", "base", "div", "section", "header"):
        if element.get("role") in _CHROME_ROLES or element.tag == "base":
            return True
        # Exporters (Word, LibreOffice, Google Docs, pandoc) do not load remote scripts or
        # write canonical links and social-media cards; served pages nearly always do.
        if element.tag == "script" and (element.get("src") or "").startswith(("http", "//")):
            return True
        if element.tag == "meta" and (element.get("property") or element.get("name") or "")[
            :3
        ].lower() in ("og:", "twi"):
            return True
        if element.tag == "link" and (element.get("rel") or "").lower() == "canonical":
            return True
    # Old table-and-div layouts have no semantic tags but are mostly links outside the text.
    body = root.find("body")
    if body is None:
        return False
    all_text = len(" ".join(body.text_content().split()))
    link_text = sum(len(" ".join(a.text_content().split())) for a in body.iter("a"))
    return all_text > 0 and link_text / all_text > 0.3


def trafilatura_blocks(parent: etree._Element) -> Iterator[Block]:
    """Blocks from the children of a trafilatura XML element (its body, or one unit of it)."""
    for element in parent:
        tag = element.tag
        if tag == "head":
            rend = element.get("rend") or "h2"
            level = int(rend[1]) if rend[:1] == "h" and rend[1:].isdigit() else 2
            yield Block(one_line(_xml_text(element)), kind="heading", level=level)
        elif tag in ("p", "quote"):
            yield Block(clean(_xml_text(element)))
        elif tag == "code":
            yield Block(clean_code(_xml_text(element)))
        elif tag == "list":
            block = list_block(_trafilatura_items(element, 0), ordered=element.get("rend") == "ol")
            if block:
                yield block
        elif tag == "table":
            rows = ([_xml_text(cell) for cell in row.iter("cell")] for row in element.iter("row"))
            block = table_block(rows)
            if block:
                yield block
        elif tag == "div":
            yield from trafilatura_blocks(element)


def _trafilatura_items(element: etree._Element, depth: int) -> Iterator[tuple[int, str]]:
    for item in element.iterchildren("item"):
        yield depth, _xml_text(item, skip=("list",))
        for nested in item.iterchildren("list"):
            yield from _trafilatura_items(nested, depth + 1)


def _xml_text(element: etree._Element, skip: Iterable[str] = ()) -> str:
    """Text of a trafilatura element, with ``<lb/>`` as a line break."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == "lb":
            parts.append("\n")
        elif child.tag not in skip:
            parts.append(_xml_text(child, skip))
        parts.append(child.tail or "")
    return "".join(parts)


# --- the structural walk ----------------------------------------------------------------


def html_blocks(root: lxml.html.HtmlElement) -> list[Block]:
    """Every heading, paragraph, list, table and ``pre`` block in document order, without
    scripts, styles, navigation, footers, asides, forms and hidden elements."""
    body = root.find("body")
    walker = _Walker(body if body is not None else root)
    return [block for block in walker.blocks if block.text]


def _tag(element: etree._Element) -> str | None:
    tag = element.tag
    if not isinstance(tag, str):
        return None  # a comment or processing instruction
    # XHTML parsed as XML carries a namespace; the HTML parser drops it, but be safe.
    return tag.rsplit("}", 1)[-1].lower()


def _dropped(element: etree._Element, tag: str | None) -> bool:
    if tag is None or tag in _DROP:
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    style = element.get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


class _Walker:
    """Collects blocks; loose inline text inside containers becomes paragraphs."""

    def __init__(self, top: etree._Element) -> None:
        self.blocks: list[Block] = []
        self._inline: list[str] = []
        # Elements with a block-level descendant: an <a> or <span> wrapping paragraphs is
        # walked as a container, not flattened. Computed once, so the walk stays linear.
        self._has_blocks: set[etree._Element] = set()
        for element in top.iter(*_BLOCKS):
            for ancestor in element.iterancestors():
                if ancestor in self._has_blocks:
                    break
                self._has_blocks.add(ancestor)
        self._container(top)
        self._flush()

    def _emit(self, block: Block | None) -> None:
        if block is not None and block.text:
            self.blocks.append(block)

    def _flush(self) -> None:
        if self._inline:
            self._emit(Block(clean("".join(self._inline))))
            self._inline = []

    def _container(self, element: etree._Element) -> None:
        self._inline.append(element.text or "")
        for child in element:
            self._child(child)
            self._inline.append(child.tail or "")

    def _child(self, element: etree._Element) -> None:
        tag = _tag(element)
        if _dropped(element, tag):
            return
        if tag == "br":
            self._inline.append("\n")
        elif tag in _HEADINGS:
            self._flush()
            self._emit(Block(one_line(_inline_text(element)), kind="heading", level=int(tag[1])))
        elif tag == "p" and element not in self._has_blocks:
            self._flush()
            self._emit(Block(clean(_inline_text(element))))
        elif tag in ("ul", "ol"):
            self._flush()
            self._emit(list_block(_list_items(element, 0), ordered=tag == "ol"))
        elif tag == "dl":
            self._flush()
            self._emit(list_block(_definition_items(element)))
        elif tag == "table" and next(element.iterdescendants("table"), None) is None:
            self._flush()
            for caption in element.iterchildren("caption"):
                self._emit(Block(clean(_inline_text(caption))))
            self._emit(table_block(_table_rows(element)))
        elif tag == "pre":
            self._flush()
            self._emit(Block(clean_code(_inline_text(element))))
        elif tag == "hr":
            self._flush()
        elif tag in _BLOCKS or element in self._has_blocks:
            # Containers, layout tables (tables holding tables) and inline wrappers of blocks.
            self._flush()
            self._container(element)
            self._flush()
        else:
            self._inline.append(_inline_text(element))


def _inline_text(element: etree._Element, skip: frozenset[str] = frozenset()) -> str:
    parts = [element.text or ""]
    for child in element:
        tag = _tag(child)
        if tag == "br":
            parts.append("\n")
        elif not _dropped(child, tag) and tag not in skip:
            text = _inline_text(child, skip)
            # Block children of an inline run (a <p> in a list item) still separate words.
            parts.append(f"\n{text}\n" if tag in _BLOCKS else text)
        parts.append(child.tail or "")
    return "".join(parts)


_LISTS = frozenset({"ul", "ol"})


def _list_items(element: etree._Element, depth: int) -> Iterator[tuple[int, str]]:
    for child in element:
        tag = _tag(child)
        if _dropped(child, tag):
            continue
        if tag == "li":
            yield depth, _inline_text(child, skip=_LISTS)
            for nested in child.iter("ul", "ol"):
                # Only lists whose nearest enclosing item is this one; deeper ones recurse.
                if next(nested.iterancestors("li"), None) is child:
                    yield from _list_items(nested, depth + 1)
        elif tag in _LISTS:
            yield from _list_items(child, depth + 1)


def _definition_items(element: etree._Element) -> Iterator[tuple[int, str]]:
    for child in element.iter("dt", "dd"):
        if not _dropped(child, _tag(child)):
            yield (0 if _tag(child) == "dt" else 1), _inline_text(child)


def _table_rows(table: etree._Element) -> Iterator[list[str]]:
    for row in table.iter("tr"):
        if next(row.iterancestors("table"), None) is not table:
            continue
        yield [
            _inline_text(cell)
            for cell in row
            if _tag(cell) in ("td", "th") and not _dropped(cell, _tag(cell))
        ]
