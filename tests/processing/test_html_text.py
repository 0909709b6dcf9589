"""HTML, plain text and Markdown extraction, and the text rules all extractors share. Each
behaviour on text written here or made by ``tests/documents.py``; saved web pages from the
corpus (through the ``corpus`` fixture) are the real-world layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processing.documents import open_document
from processing.documents.base import Block, Document, DocumentError, Limits, Unit
from processing.documents.text import clean, clean_code, one_line, sections, table_block
from tests import documents

pytestmark = pytest.mark.services_free


def read_all(path: Path, limits: Limits | None = None) -> tuple[Document, list[Unit]]:
    document = open_document(path, limits or Limits())
    return document, list(document.units)


def kinds(units: list[Unit]) -> list[tuple[str, int, str]]:
    return [(block.kind, block.level, block.text) for unit in units for block in unit.blocks]


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# --- saved web pages (the corpus): main content kept, boilerplate dropped ---------------------


# Every page in the corpus's web/ folder; expected.json says what each must keep and drop.
WEB_PAGES = [
    "blog.python.org.html",
    "caktusgroup.com.django.html",
    "en.wikipedia.org.tsne.html",
    "github.blog.spiceland.html",
    "gregoryszorc.com.python3.html",
    "nature.com.telescope.html",
    "phys.org.tool.html",
    "pluralsight.com.python.html",
    "lemire.me.json.html",
    "reuters.com.parasite.html",
    "salon.com.emissions.html",
]


def page_name(param: Any) -> str:
    return param if isinstance(param, str) else param.values[0]


@pytest.fixture(scope="module")
def web(corpus: Path) -> Path:
    return corpus / "web"


@pytest.fixture(scope="module")
def expected(web: Path) -> dict[str, dict[str, Any]]:
    return json.loads((web / "expected.json").read_text(encoding="utf-8"))


def test_every_web_page_is_listed(web: Path, expected: dict[str, dict[str, Any]]) -> None:
    listed = {page_name(param) for param in WEB_PAGES}
    assert {path.name for path in web.glob("*.html")} == listed == set(expected)


@pytest.mark.parametrize("page", WEB_PAGES)
def test_web_page_main_content(web: Path, expected: dict[str, dict[str, Any]], page: str) -> None:
    document, units = read_all(web / page)
    assert document.format == "html"
    text = "\n".join(unit.text() for unit in units)
    for phrase in expected[page]["with"]:
        assert phrase in text
    for phrase in expected[page]["without"]:
        assert phrase not in text
    assert {unit.kind for unit in units} == {"section"}
    assert [unit.number for unit in units] == list(range(1, len(units) + 1))


def test_web_page_keeps_its_own_structure(web: Path) -> None:
    """trafilatura picks the content; the page's own heading levels and code layout stay."""
    document, units = read_all(web / "caktusgroup.com.django.html")
    assert document.title and document.title.startswith("Testing Client-Side Applications")
    found = kinds(units)
    assert ("heading", 4, "Finding a Fix") in found
    code = [text for _, _, text in found if "from django.conf import settings" in text]
    assert code and code[0].startswith("import os\n\nfrom django.conf import settings\n")


def test_wikipedia_table_rows(web: Path) -> None:
    _, units = read_all(web / "en.wikipedia.org.tsne.html")
    tables = [block for unit in units for block in unit.blocks if block.kind == "table"]
    assert tables and all(line for block in tables for line in block.text.split("\n"))


# --- web pages made here: main content kept, boilerplate dropped ------------------------------


def test_article_page_keeps_the_article_and_drops_the_rest(tmp_path: Path) -> None:
    article = documents.html_article(tmp_path)
    document, units = read_all(article.path)
    assert document.format == "html"
    assert document.title == "Harbour news"
    assert kinds(units) == [
        ("heading", 1, "Record morning at the harbour"),
        *(("paragraph", 0, text) for text in documents.HTML_ARTICLE_PARAGRAPHS),
    ]
    text = "\n".join(unit.text() for unit in units)
    for phrase in article.absent:
        assert phrase not in text


def test_web_page_alignment_drops_menu_words(tmp_path: Path) -> None:
    article = " ".join(f"Sentence {n} of the article body, which is long." for n in range(30))
    page = (
        "<html><head><link rel='canonical' href='https://example.com/a'></head><body>"
        "<div class='menu'>Home</div><div class='menu'>Subscribe now</div>"
        f"<h2>The Story</h2><div class='post'><p>{article}</p><p>Home is where it ends.</p>"
        "<pre>line one\n    line two</pre></div>"
        "<div class='share'>Share this story</div></body></html>"
    )
    _, units = read_all(write(tmp_path, "a.html", page))
    texts = [text for _, _, text in kinds(units)]
    assert "Home" not in texts
    assert "Subscribe now" not in texts
    assert article in texts
    assert "Home is where it ends." in texts


# --- an exported HTML document: every block kept --------------------------------------------

EXPORTED = """<!DOCTYPE html>
<html><head><meta charset="windows-1252"><title>Meeting Minutes</title>
<style>p { color: red }</style><script>var tracking = 1;</script></head>
<body>
<h1>Meeting Minutes</h1>
<p>Present: Ann, Bob.</p>
<p>OK.</p>
<h2>Decisions</h2>
<ul><li>Ship <b>v2</b> in May<ul><li>after the audit</li></ul></li><li>Hire two people</li></ul>
<ol><li>First</li><li>Second</li></ol>
<table><tr><th>Owner</th><th>Task</th></tr><tr><td>Ann</td><td>Budget<br>draft</td></tr>
<tr><td colspan="2">Everyone: review</td></tr></table>
<pre>def total(items):
    return sum(items)</pre>
<div>Loose text in a div <span>with a span</span>
<div hidden>secret hidden note</div></div>
<form><label>Search</label><input name="q"></form>
<!-- a comment that must not appear -->
<h1>Next Steps</h1>
<p>Caf\xe9 au lait \u2013 the &#xFB01;nal word.</p>
</body></html>"""


def test_exported_document_keeps_everything(tmp_path: Path) -> None:
    path = write(tmp_path, "minutes.htm", EXPORTED.encode("cp1252"))
    document, units = read_all(path)
    assert document.format == "html"
    assert document.title == "Meeting Minutes"
    assert kinds(units) == [
        ("heading", 1, "Meeting Minutes"),
        ("paragraph", 0, "Present: Ann, Bob."),
        ("paragraph", 0, "OK."),  # short, but an exported document's own paragraph
        ("heading", 2, "Decisions"),
        ("list", 0, "- Ship v2 in May\n  - after the audit\n- Hire two people"),
        ("list", 0, "1. First\n2. Second"),
        ("table", 0, "Owner | Task\nAnn | Budget draft\nEveryone: review"),
        ("paragraph", 0, "def total(items):\n    return sum(items)"),
        ("paragraph", 0, "Loose text in a div with a span"),
        ("heading", 1, "Next Steps"),
        ("paragraph", 0, "Caf\xe9 au lait \u2013 the final word."),
    ]
    assert [unit.number for unit in units] == [1, 2]  # a new section at the second <h1>


def test_html_nav_footer_aside_dropped(tmp_path: Path) -> None:
    page = (
        "<html><body><nav><a href='/'>Home</a></nav><main><h1>Story</h1>"
        "<p>The body of the story, long enough to be the main content of this page.</p>"
        "</main><aside>Related links</aside><footer>Copyright</footer></body></html>"
    )
    _, units = read_all(write(tmp_path, "a.html", page))
    text = "\n".join(unit.text() for unit in units)
    assert "The body of the story" in text
    for boilerplate in ("Home", "Related links", "Copyright"):
        assert boilerplate not in text


def test_huge_html_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from processing.documents import html

    monkeypatch.setattr(html, "MAX_HTML_BYTES", 1000)
    path = write(tmp_path, "big.html", "<html><body>" + "<p>x</p>" * 500 + "</body></html>")
    with pytest.raises(DocumentError) as info:
        read_all(path)
    assert info.value.code == "file_too_large"


# --- plain text -------------------------------------------------------------------------------


def test_text_paragraphs_and_line_ends(tmp_path: Path) -> None:
    data = "First  paragraph\r\nsecond line.\r\n\r\n\r\nSecond\tparagraph.\rend\n"
    document, units = read_all(write(tmp_path, "a.txt", data))
    assert document.format == "text"
    assert kinds(units) == [
        ("paragraph", 0, "First paragraph\nsecond line."),
        ("paragraph", 0, "Second paragraph.\nend"),
    ]


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b""), ("utf-8-sig", b""), ("utf-16", b""), ("cp1252", b"")],
)
def test_text_encodings(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    text = "Gr\u00fc\u00dfe aus K\u00f6ln \u2013 na\u00efve caf\u00e9.\n\nZweiter Absatz."
    path = write(tmp_path, "a.txt", prefix + text.encode(encoding))
    _, units = read_all(path)
    assert units[0].text() == text


def test_text_is_split_every_fifty_paragraphs(tmp_path: Path) -> None:
    data = "\n\n".join(f"Paragraph {n}." for n in range(120))
    _, units = read_all(write(tmp_path, "a.txt", data))
    assert [len(unit.blocks) for unit in units] == [50, 50, 20]
    assert [unit.number for unit in units] == [1, 2, 3]


def test_text_character_limit(tmp_path: Path) -> None:
    data = "\n\n".join("word " * 50 for _ in range(100))
    document = open_document(write(tmp_path, "a.txt", data), Limits(max_characters=1000))
    with pytest.raises(DocumentError) as info:
        list(document.units)
    assert info.value.code == "too_many_characters"


def test_one_enormous_line_is_cut_into_blocks(tmp_path: Path) -> None:
    _, units = read_all(write(tmp_path, "a.txt", "word " * 60_000))
    assert max(len(block.text) for unit in units for block in unit.blocks) <= 100_000
    assert sum(len(unit.text()) for unit in units) >= len("word " * 60_000) - 10


# --- Markdown -------------------------------------------------------------------------------

MARKDOWN = """# Project Title

Intro paragraph that wraps
onto a second line.

Setext Heading
--------------

- item one
- item two
  continued

```python
def f():

    return 1
```

| Name | Value |
| ---- | ----- |
| a    | 1     |

### Deep heading ###

# Second Chapter

Closing words.
"""


def test_markdown_structure(tmp_path: Path) -> None:
    document, units = read_all(write(tmp_path, "README.md", MARKDOWN))
    assert document.format == "markdown"
    assert document.title == "Project Title"
    assert kinds(units) == [
        ("heading", 1, "Project Title"),
        ("paragraph", 0, "Intro paragraph that wraps onto a second line."),
        ("heading", 2, "Setext Heading"),
        ("list", 0, "- item one\n- item two\ncontinued"),
        ("paragraph", 0, "def f():\n\n    return 1"),
        ("table", 0, "Name | Value\na | 1"),
        ("heading", 3, "Deep heading"),
        ("heading", 1, "Second Chapter"),
        ("paragraph", 0, "Closing words."),
    ]
    assert [unit.number for unit in units] == [1, 2]
    assert units[1].blocks[0].text == "Second Chapter"


def test_unterminated_fence_keeps_the_rest(tmp_path: Path) -> None:
    _, units = read_all(write(tmp_path, "a.md", "# T\n\n```\ncode line\n\nmore code\n"))
    assert kinds(units)[-1] == ("paragraph", 0, "code line\n\nmore code")


# --- the shared text rules ------------------------------------------------------------------


def test_clean() -> None:
    assert clean("  a \u00a0 b\t\tc  \n\n\n\n  d\u200b ") == "a b c\n\nd"
    assert clean("\ufb01 \ufb02 \ufb00 \u0133") == "fi fl ff ij"
    assert clean("x\x00\x07y\r\nz\x0bw") == "xy\nz\nw"
    # Only ligatures get NFKC: superscripts, fractions and full-width forms stay.
    assert clean("x\u00b2 \u00bd \uff21") == "x\u00b2 \u00bd \uff21"


def test_clean_code_keeps_indentation() -> None:
    assert clean_code("\n\n  if x:\n\tpass   \n") == "  if x:\n    pass"


def test_one_line_and_table_block() -> None:
    assert one_line(" a\n b ") == "a b"
    assert table_block([["a", " b ", ""], ["", "", ""], ["c\nd", None]]) == Block(
        "a | b\nc d", kind="table"
    )
    assert table_block([["", None]]) is None


def test_sections_keep_title_with_first_chapter() -> None:
    stream = [
        Block("Title", kind="heading", level=1),
        Block("Chapter", kind="heading", level=1),
        Block("text"),
        Block("Next", kind="heading", level=1),
        Block(""),
    ]
    units = list(sections(stream))
    assert [[block.text for block in unit.blocks] for unit in units] == [
        ["Title", "Chapter", "text"],
        ["Next"],
    ]
