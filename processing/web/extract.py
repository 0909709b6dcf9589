"""The main content of a web page, as blocks, and what the page says about itself.

One trafilatura run is not enough: its precision mode drops real text it is unsure of (an
interview's bold questions, the closing "Additional reporting by" line), and its default
mode keeps boilerplate around the article (dates, category lines, "Our standards" badges).
So both run, and the page's own tree decides between them:

1. Every block of both runs is found again in the page (``_SourceText``). The **core** is
   what both runs kept; it is nearly never boilerplate. (What only the precision run
   kept is dropped: where the runs disagree that much, the precision run has usually
   latched onto teasers in a sidebar.)
2. The **region** is the deepest element holding 90% of the core's text: the article
   body as the page itself marks it up.
3. A block of the default run is kept when it is core, or lies inside the region and is
   not mostly link text (a badge, a tag list, "read more"), or is the headline (a heading
   before the region that repeats the page's title). What the default run found outside
   the region (bylines, dates, labels, share bars) goes.
4. **Lead-in**: editor's notes and standfirsts often sit just before the article element,
   as its siblings, where neither run looks. Prose paragraphs (sentences, mostly not link
   text) in the siblings right before the region are kept. Only before it: what follows
   an article (author bios, related posts, comments, newsletter calls) is the boilerplate
   the precision run exists to drop.
5. **Captions go with their pictures**: trafilatura drops ``<figure>`` and its caption when
   images are not kept; a paragraph made of a picture, a line break and a short line is
   the same caption written without ``<figure>``, and goes too.
6. **The author's replies**: reader comments are dropped, but a comment whose header
   names the page's author is the author's own text (an answer, a correction, what comes
   next) and is kept, as a ``comment`` block "Name: text", like DOCX comments.

When the runs agree on nothing (the precision run found nothing), the default run's
blocks that are not mostly link text stand in for the core: its last resort is the whole
page, and a page of menus must end in ``no_main_content``, not in a memory of links.

No rule names a site, a class or a phrase: each is about structure (where a block sits
against the core, how much of it is link text, whether it is prose), so it applies to
pages never seen. ``python -m bench.web`` scores it, beside trafilatura alone, on the
corpus's real pages.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import lxml.html
import trafilatura
from lxml import etree

from processing.documents.base import Block, DocumentError
from processing.documents.html import MAX_HTML_BYTES, parse_html, trafilatura_blocks
from processing.documents.text import clean_code, one_line

# The deepest element holding this share of the core's text is the article's region.
_REGION_SHARE = 0.9
# A block more than this share link text is navigation, a badge or a tag list.
_MAX_LINK_SHARE = 0.5
# Lead-in: how many siblings before the region are looked at, and what counts as prose.
_LEAD_IN_SIBLINGS = 3
_LEAD_IN_MAX_PARAGRAPHS = 3
_PROSE_MIN_WORDS = 4
_SENTENCE_END = re.compile("[.!?\u2026][\"'\u201d\u2019)\\]]*$")
# Author replies: how far above a comment its header is looked for, and how long it may be.
_COMMENT_HEADER_DEPTH = 4
_COMMENT_HEADER_CHARS = 300
# A caption under a picture is a line, not a paragraph of prose.
_CAPTION_MAX_WORDS = 25
# Anchor lengths tried when a block's whole text is not found in the page (trafilatura
# dropped a formula or rewrote a code line in it): its start and end are looked up.
_ANCHORS = (64, 32, 16)
# Text in these elements is never main text (and trafilatura never outputs it), so it is
# left out of the page text that blocks are found in: a formula's markup would otherwise
# split a paragraph's text in two.
_UNREAD = frozenset(
    {
        "head", "script", "style", "noscript", "template", "svg", "math", "select",
        "option", "textarea", "button", "iframe", "object", "embed", "canvas",
    }
)  # fmt: skip
_NOT_LEAD_IN = frozenset({"nav", "aside", "footer", "form", "figure", "header"})
_PARAGRAPHS = frozenset({"p", "div"})
_SPACING = re.compile(r"\s+")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_TRAFILATURA_BLOCKS = frozenset({"head", "p", "quote", "code", "list", "table"})

Span = tuple[int, int]
_NO_BLOCK = Block("")


@dataclass(frozen=True)
class Page:
    """A web page's main content and metadata (``None`` where the page does not say).

    Blocks, in the page's order: ``heading`` (``level`` 1-6, as the page set it),
    ``paragraph`` (code too, with its line breaks and indentation), ``list`` ("- item"
    lines, nested items indented), ``table`` ("a | b" rows) and ``comment`` (the author's
    own replies under the post, "Name: text").
    """

    title: str | None
    author: str | None
    date: str | None  # ISO date (YYYY-MM-DD), as trafilatura's date search gives it
    language: str | None  # the page's declared language tag, e.g. "en" or "en-US"
    canonical_url: str | None  # the page's canonical link, else the URL it came from
    site_name: str | None
    description: str | None
    blocks: list[Block]

    def text(self) -> str:
        """The main text: blocks joined by blank lines."""
        return "\n\n".join(block.text for block in self.blocks if block.text)

    def metadata(self) -> dict[str, str]:
        """The metadata the page gave, to store on every memory made from it."""
        fields = {
            "title": self.title,
            "author": self.author,
            "date": self.date,
            "language": self.language,
            "canonical_url": self.canonical_url,
            "site_name": self.site_name,
            "description": self.description,
        }
        return {name: value for name, value in fields.items() if value is not None}


def extract_page(html: str, *, url: str | None = None) -> Page:
    """The main content of ``html`` (already decoded: ``decode_html``), fetched from
    ``url`` if known (a fallback for the canonical URL).

    ``DocumentError`` with code ``empty_file`` for an empty page, ``file_too_large`` past
    ``MAX_HTML_BYTES``, ``no_main_content`` when nothing on it reads as main text, and
    the default code for markup nested too deeply to walk.
    """
    if len(html) > MAX_HTML_BYTES // 4 and len(html.encode("utf-8", "replace")) > MAX_HTML_BYTES:
        raise DocumentError(
            f"Web page is larger than {MAX_HTML_BYTES // (1024 * 1024)} MB",
            code="file_too_large",
        )
    root = parse_html(html, what="Web page")
    try:
        return _extract(root, url)
    except RecursionError as exc:
        raise DocumentError("Web page is nested too deeply to read") from exc


# --- the two runs and their blocks ------------------------------------------------------


@dataclass
class _Found:
    """A block of one run: trafilatura's element for it, its text as a key, where it came
    from in the page (if found there), and the block made of it."""

    unit: etree._Element
    key: str
    span: Span | None = None
    element: etree._Element | None = None
    block: Block = _NO_BLOCK


def _extract(root: lxml.html.HtmlElement, url: str | None) -> Page:
    """Both runs, the rules (module docstring) and the metadata."""
    balanced_run = _run(root, url, precision=False)
    precise_run = _run(root, url, precision=True)
    meta = balanced_run
    if meta is None:
        meta = trafilatura.extract_metadata(root, default_url=url)
    source = _SourceText(root)
    balanced = _blocks(source, balanced_run and balanced_run.body)
    precise = _blocks(source, precise_run and precise_run.body)
    if not balanced:
        balanced = precise  # the default run gave up where the precise one did not
    kept = _main_blocks(source, balanced, precise, title=meta.title)
    if kept:
        comments = _blocks(source, balanced_run and balanced_run.commentsbody)
        kept += _author_replies(source, comments, meta.author)
    if not kept:
        raise DocumentError(
            "No main text found on the page: it holds only navigation or boilerplate, "
            "or its text is written by JavaScript",
            code="no_main_content",
        )
    kept.sort(key=lambda item: item[0])
    return Page(
        title=meta.title or None,
        author=meta.author or None,
        date=meta.date or None,
        language=_language(root),
        canonical_url=meta.url or url or None,
        site_name=meta.sitename or None,
        description=meta.description or None,
        blocks=[block for _, block in kept],
    )


def _run(root: lxml.html.HtmlElement, url: str | None, *, precision: bool) -> Any:
    """One trafilatura run on (a copy of) the parsed page; None when it finds nothing."""
    return trafilatura.bare_extraction(
        root,
        url=url,
        favor_precision=precision,
        include_comments=not precision,
        include_tables=True,
        include_formatting=False,
        include_images=False,
        include_links=False,
        deduplicate=False,
        with_metadata=not precision,
    )


def _blocks(source: _SourceText, body: etree._Element | None) -> list[_Found]:
    """A run's blocks, found in the page, in the run's order."""
    if body is None:
        return []
    run = source.locate([_Found(unit, _key("".join(unit.itertext()))) for unit in _units(body)])
    found = []
    for item in run:
        block = _code_block(source, item) or _text_block(item.unit)
        if block is not None:
            item.block = block
            found.append(item)
    return found


def _text_block(unit: etree._Element) -> Block | None:
    """The block trafilatura's element makes (``html.py`` renders lists, tables...)."""
    if unit.tag != "code":
        _squash_spacing(unit)
    for block in trafilatura_blocks((unit,)):
        if block.text:
            # One Unicode form, as trafilatura's own text output has (pages mix them).
            text = unicodedata.normalize("NFC", block.text)
            return Block(text, kind=block.kind, level=block.level)
    return None


def _code_block(source: _SourceText, found: _Found) -> Block | None:
    """A ``<pre>`` block read from the page itself: trafilatura may give it as a quote,
    with each line's indentation stripped, and code needs its layout."""
    if found.unit.tag not in ("quote", "code") or found.element is None:
        return None
    pre = next((e for e in (found.element, *found.element.iterancestors()) if e.tag == "pre"), None)
    if pre is None or source.extent(pre) != found.span:
        return None
    text = clean_code(pre.text_content())
    return Block(unicodedata.normalize("NFC", text)) if text else None


def _squash_spacing(element: etree._Element) -> None:
    """Runs of spaces and line breaks as one space, as a browser shows them: a paragraph
    hard-wrapped in the page's source is one line; only ``<lb/>`` (``<br>``) breaks it.
    Code keeps its layout."""
    code = {node for block in element.iter("code") for node in block.iter()}
    for node in element.iter():
        if node.text and node not in code:
            node.text = _SPACING.sub(" ", node.text)
        if node.tail and node is not element and node.getparent() not in code:
            node.tail = _SPACING.sub(" ", node.tail)


def _units(parent: etree._Element) -> Iterator[etree._Element]:
    """The elements of a run's body that make one block each, in order. Text loose in
    the body (a line between two paragraphs) becomes a paragraph, and table rows outside
    a table (trafilatura's reading of layout tables) a table, so none of it is lost."""
    rows: list[etree._Element] = []
    for child in [parent.text, *itertools.chain.from_iterable((c, c.tail) for c in parent)]:
        if isinstance(child, etree._Element) and child.tag == "row":
            rows.append(child)
            continue
        if rows:
            yield _wrapped("table", rows)
            rows = []
        if child is None or isinstance(child, str):
            if child and child.strip():
                yield _wrapped("p", [child])
        elif child.tag == "div":
            yield from _units(child)
        elif child.tag in _TRAFILATURA_BLOCKS:
            yield child
        elif "".join(child.itertext()).strip():
            yield _wrapped("p", [child])
    if rows:
        yield _wrapped("table", rows)


def _wrapped(tag: str, content: list[etree._Element | str]) -> etree._Element:
    """A new element holding copies of ``content`` (elements or text)."""
    wrapper = etree.Element(tag)
    for item in content:
        if isinstance(item, str):
            if len(wrapper):
                wrapper[-1].tail = (wrapper[-1].tail or "") + item
            else:
                wrapper.text = (wrapper.text or "") + item
        else:
            copied = copy.copy(item)
            copied.tail = None
            wrapper.append(copied)
    return wrapper


# --- choosing the blocks ----------------------------------------------------------------


def _main_blocks(
    source: _SourceText, balanced: list[_Found], precise: list[_Found], *, title: str | None
) -> list[tuple[float, Block]]:
    """The module's rules: the blocks kept, each with its place in the page."""
    in_precise = _Spans(found.span for found in precise if found.span)
    core = [found for found in balanced if found.span and in_precise.overlaps(found.span)]
    if not core:
        # The runs disagree on everything (or the precise one found nothing): the default
        # run decides, but only for what is not mostly links (its last resort is to take
        # the whole page, menus included).
        core = [
            found
            for found in balanced
            if found.span and source.link_share(found.span) <= _MAX_LINK_SHARE
        ]
    core_spans = _Spans(found.span for found in core if found.span)
    region = _region(core)
    region_start = min((found.span[0] for found in core if found.span), default=0)

    def decide(found: _Found) -> bool:
        if found.span is None or found.element is None:
            return False
        if core_spans.overlaps(found.span):
            return True
        if region is not None and _inside(found.element, region):
            return source.link_share(found.span) <= _MAX_LINK_SHARE
        return (
            found.block.kind == "heading"
            and found.span[1] <= region_start
            and _same_title(found.block.text, title)
        )

    kept: list[tuple[float, Block]] = []
    taken = _Spans()
    total = linked = 0.0
    decisions = [decide(found) for found in balanced]
    positions = _positions(balanced)
    for index, found in enumerate(balanced):
        keep = decisions[index]
        if found.span is None:
            # Not found in the page: kept where the blocks on both sides are.
            keep = 0 < index < len(balanced) - 1 and decisions[index - 1] and decisions[index + 1]
        if keep and not _is_caption(source, found):
            kept.append((positions[index], found.block))
            if found.span:
                taken.add(found.span)
                length = found.span[1] - found.span[0]
                total += length
                linked += source.link_share(found.span) * length
    if total and linked / total > _MAX_LINK_SHARE:
        return []  # what both runs agree on is mostly links: a menu, not an article
    if region is not None:
        for span, block in _lead_in(source, region):
            if not taken.overlaps(span):
                kept.append((span[0] - 0.5, block))
    return kept


def _positions(run: list[_Found]) -> list[float]:
    """Where each block goes in the page's order: its start, or just after the last block
    before it that was found."""
    positions = []
    last, since = -1, 0
    for found in run:
        if found.span is not None:
            last, since = found.span[0], 0
        else:
            since += 1
        positions.append(last + since / (len(run) + 1))
    return positions


def _region(core: list[_Found]) -> etree._Element | None:
    """The deepest element holding ``_REGION_SHARE`` of the core's text."""
    weights: dict[etree._Element, int] = {}
    total = 0
    for found in core:
        if found.span is None or found.element is None:
            continue
        size = found.span[1] - found.span[0]
        total += size
        for element in (found.element, *found.element.iterancestors()):
            weights[element] = weights.get(element, 0) + size
    # Elements holding most of the text are nested in one another: the deepest one holds
    # the least of them.
    holding = [element for element, weight in weights.items() if weight >= _REGION_SHARE * total]
    return min(holding, key=lambda element: weights[element], default=None)


def _inside(element: etree._Element, region: etree._Element) -> bool:
    return element is region or any(ancestor is region for ancestor in element.iterancestors())


def _same_title(heading: str, title: str | None) -> bool:
    """A heading that is the page's title (which often carries " | Site" after it)."""
    if not title:
        return False
    heading, title = _key(heading), _key(title)
    return bool(heading) and heading in title and len(heading) * 2 >= len(title)


def _lead_in(source: _SourceText, region: etree._Element) -> list[tuple[Span, Block]]:
    """Prose paragraphs in the siblings just before the region (rule 4), in page order."""
    found: list[tuple[Span, Block]] = []
    looked = 0
    for sibling in region.itersiblings(preceding=True):
        if not isinstance(sibling.tag, str) or not sibling.text_content().strip():
            continue
        looked += 1
        if looked > _LEAD_IN_SIBLINGS or sibling.tag in _NOT_LEAD_IN:
            break
        paragraphs = [sibling] if sibling.tag == "p" else list(sibling.iter("p"))
        if len(paragraphs) > _LEAD_IN_MAX_PARAGRAPHS:
            break  # a body of text of its own, not a note before this one
        prose = [paragraph for paragraph in paragraphs if _is_prose(paragraph, sibling)]
        if not prose:
            break
        for paragraph in reversed(prose):
            text = unicodedata.normalize("NFC", one_line(paragraph.text_content()))
            span = source.find(_key(text))
            if span is not None:
                found.append((span, Block(text)))
    found.reverse()
    return found


def _is_prose(paragraph: etree._Element, top: etree._Element) -> bool:
    """Sentences, mostly not link text, not in a menu, form or figure."""
    for element in (paragraph, *paragraph.iterancestors()):
        if element.tag in _NOT_LEAD_IN or _hidden(element):
            return False
        if element is top:
            break
    text = one_line(paragraph.text_content())
    if len(text.split()) < _PROSE_MIN_WORDS or not _SENTENCE_END.search(text):
        return False
    links = sum(len(one_line(link.text_content())) for link in paragraph.iter("a"))
    return links <= _MAX_LINK_SHARE * len(text)


def _hidden(element: etree._Element) -> bool:
    style = (element.get("style") or "").replace(" ", "").lower()
    return (
        element.get("hidden") is not None
        or element.get("aria-hidden") == "true"
        or "display:none" in style
        or "visibility:hidden" in style
    )


def _is_caption(source: _SourceText, found: _Found) -> bool:
    """A short line under a picture in the same paragraph (rule 5)."""
    if found.block.kind != "paragraph" or found.element is None:
        return False
    if len(found.block.text.split()) > _CAPTION_MAX_WORDS:
        return False
    paragraph = next(
        (e for e in (found.element, *found.element.iterancestors()) if e.tag in _PARAGRAPHS),
        None,
    )
    if paragraph is None or source.extent(paragraph) != found.span:
        return False  # the paragraph holds more than this line
    picture = False
    for event, node in etree.iterwalk(paragraph, events=("start", "end")):
        if event == "start" and node.tag in ("img", "picture"):
            picture = True
        elif event == "start" and node.tag == "br":
            return picture
        elif event == "start" and node.text and node.text.strip():
            return False  # text before the picture's line break: not a caption layout
        elif event == "end" and node is not paragraph and node.tail and node.tail.strip():
            return False
    return False


def _author_replies(
    source: _SourceText, comments: list[_Found], author: str | None
) -> list[tuple[float, Block]]:
    """Comments whose header names the page's author (rule 6): one comment block each."""
    names = _names(author)
    if not names:
        return []
    spans = _Spans(found.span for found in comments if found.span)
    items: dict[etree._Element, tuple[str, list[_Found]]] = {}
    for found in comments:
        if found.block.kind == "paragraph":
            item, header = _comment_item(source, found, spans)
            if item is not None:
                items.setdefault(item, (header, []))[1].append(found)
    replies: list[tuple[float, Block]] = []
    for header, parts in items.values():
        name = next((name for name in names if _key(name) in header), None)
        text = "\n".join(part.block.text for part in parts)
        if name and len(text.split()) >= _PROSE_MIN_WORDS:
            position = parts[0].span[0] if parts[0].span else 0
            replies.append((position, Block(f"{name}: {text}", kind="comment")))
    return replies


def _names(author: str | None) -> list[str]:
    """Full names in an author line: runs of two capitalised words ("View all posts by
    Jane Doe" holds "Jane Doe"; "Jane Doe; John Roe" holds both)."""
    words = re.findall(r"[^\W\d][\w'.-]*", author or "")
    return [
        f"{first} {second}"
        for first, second in itertools.pairwise(words)
        if first[0].isupper() and second[0].isupper()
    ]


def _comment_item(
    source: _SourceText, found: _Found, comments: _Spans
) -> tuple[etree._Element | None, str]:
    """The element holding one comment and its header (name, date), and that header's
    text: the first ancestor with text before the comment that is not comment text. Only
    text before it counts, so replies nested below cannot lend it their names."""
    if found.span is None or found.element is None:
        return None, ""
    for ancestor in itertools.islice(found.element.iterancestors(), _COMMENT_HEADER_DEPTH):
        extent = source.extent(ancestor)
        if extent is None:
            break
        header = source.between(extent[0], found.span[0], comments, _COMMENT_HEADER_CHARS)
        if header is None:
            break
        if header:
            return ancestor, header
    return None, ""


def _language(root: lxml.html.HtmlElement) -> str | None:
    """The page's declared language: ``<html lang>``, else its content-language or
    ``og:locale`` meta tag."""
    candidates = [root.get("lang"), root.get("xml:lang")]
    for meta in root.iter("meta"):
        name = (meta.get("http-equiv") or meta.get("property") or "").lower()
        if name in ("content-language", "og:locale"):
            candidates.append(meta.get("content"))
    for value in candidates:
        value = (value or "").strip().replace("_", "-").split(",")[0].strip()
        if _LANGUAGE.match(value):
            return value
    return None


# --- finding blocks in the page -----------------------------------------------------------


def _key(text: str) -> str:
    """Text reduced for matching: no spacing, no invisible characters, one Unicode form,
    no case (trafilatura normalises the first three on its way out)."""
    key = "".join(text.split())
    if not key.isprintable():
        key = "".join(char for char in key if char.isprintable())
    return unicodedata.normalize("NFC", key).casefold()


class _SourceText:
    """The page's readable text as one key string, each piece of it tied to the element
    that holds it and to whether it is link text, so an extracted block can be traced
    back to its place in the page."""

    def __init__(self, root: lxml.html.HtmlElement) -> None:
        self._starts: list[int] = []
        self._owners: list[etree._Element] = []
        self._links: list[bool] = []
        self._parts: list[str] = []
        self._size = 0
        # Where each element's text starts and ends in ``text``.
        self._extents: dict[etree._Element, Span] = {}
        opened: list[int] = []
        skipped = 0  # depth inside an element whose text is never read
        links = 0  # depth inside <a>
        # iterwalk rather than recursion: the tree may be as deep as the parser allows.
        for event, element in etree.iterwalk(root, events=("start", "end")):
            tag = element.tag if isinstance(element.tag, str) else "#"
            if event == "start":
                if skipped or tag in _UNREAD or tag == "#":
                    skipped += 1
                    continue
                links += tag == "a"
                opened.append(self._size)
                self._add(element.text, element, links > 0)
                continue
            if skipped:
                skipped -= 1
                if skipped:
                    continue
            else:
                links -= tag == "a"
                self._extents[element] = (opened.pop(), self._size)
            parent = element.getparent()
            if parent is not None:
                self._add(element.tail, parent, links > 0)
        self.text = "".join(self._parts)
        del self._parts

    def _add(self, text: str | None, owner: etree._Element, link: bool) -> None:
        key = _key(text) if text else ""
        if key:
            self._starts.append(self._size)
            self._owners.append(owner)
            self._links.append(link)
            self._parts.append(key)
            self._size += len(key)

    def extent(self, element: etree._Element) -> Span | None:
        """Where the text of ``element`` (and all inside it) is, if it is read at all."""
        return self._extents.get(element)

    def between(self, start: int, end: int, skip: _Spans, limit: int) -> str | None:
        """The text from ``start`` to ``end`` without what ``skip`` covers; None when that
        is longer than ``limit``."""
        parts = []
        size = 0
        for gap_start, gap_end in skip.gaps(start, end):
            size += gap_end - gap_start
            if size > limit:
                return None
            parts.append(self.text[gap_start:gap_end])
        return "".join(parts)

    def locate(self, run: list[_Found]) -> list[_Found]:
        """Find each block of a run, in order: each is looked for after the previous one
        first, so a short heading does not land on the same words in a menu above."""
        cursor = 0
        for found in run:
            found.span = self.find(found.key, cursor)
            if found.span is not None:
                found.element = self.element(found.span)
                cursor = found.span[1]
        return run

    def find(self, key: str, cursor: int = 0) -> Span | None:
        """Where ``key`` is in the page: whole, else by its first and last characters."""
        if not key:
            return None
        start = self._search(key, cursor)
        if start >= 0:
            return start, start + len(key)
        for size in _ANCHORS:
            if size * 2 > len(key):
                continue
            start = self._search(key[:size], cursor)
            if start < 0:
                continue
            end = self.text.find(key[-size:], start + size, start + 2 * len(key))
            return start, (end + size if end >= 0 else start + len(key))
        return None

    def _search(self, key: str, cursor: int) -> int:
        found = self.text.find(key, cursor)
        return found if found >= 0 or cursor == 0 else self.text.find(key, 0, cursor)

    def _pieces(self, span: Span) -> range:
        first = max(bisect.bisect_right(self._starts, span[0]) - 1, 0)
        return range(first, max(bisect.bisect_left(self._starts, span[1]), first + 1))

    def element(self, span: Span) -> etree._Element:
        """The innermost element holding all of ``span``."""
        pieces = self._pieces(span)
        path = [self._owners[pieces[0]], *self._owners[pieces[0]].iterancestors()]
        depth = {element: index for index, element in enumerate(path)}
        lowest = 0
        for index in pieces[1:]:
            element = self._owners[index]
            while element not in depth:
                element = element.getparent()
            lowest = max(lowest, depth[element])
        return path[lowest]

    def link_share(self, span: Span) -> float:
        """How much of ``span`` is the text of links."""
        linked = 0
        for index in self._pieces(span):
            if self._links[index]:
                end = self._starts[index + 1] if index + 1 < len(self._starts) else len(self.text)
                linked += max(0, min(end, span[1]) - max(self._starts[index], span[0]))
        return linked / max(span[1] - span[0], 1)


class _Spans:
    """Spans of the page's text, merged where they overlap, to ask whether a new one
    overlaps any of them and what lies between them."""

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for span in spans:
            self.add(span)

    def add(self, span: Span) -> None:
        start, end = span
        low = bisect.bisect_left(self._ends, start)  # the first that ends at or after start
        high = bisect.bisect_right(self._starts, end)  # past the last that starts by end
        if low < high:
            start = min(start, self._starts[low])
            end = max(end, self._ends[high - 1])
        self._starts[low:high] = [start]
        self._ends[low:high] = [end]

    def overlaps(self, span: Span) -> bool:
        # The merged spans are disjoint and sorted, so their ends are sorted too: only the
        # last one starting before this span ends can reach into it.
        index = bisect.bisect_left(self._starts, span[1]) - 1
        return index >= 0 and self._ends[index] > span[0]

    def gaps(self, start: int, end: int) -> Iterator[Span]:
        """The parts of ``start``-``end`` that no span covers, in order."""
        index = bisect.bisect_right(self._ends, start)
        while start < end and index < len(self._starts):
            if self._starts[index] >= end:
                break
            if self._starts[index] > start:
                yield start, self._starts[index]
            start = max(start, self._ends[index])
            index += 1
        if start < end:
            yield start, end
