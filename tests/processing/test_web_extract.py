"""Main-content extraction for web pages (``processing.web.extract``): each rule on pages
written here, and the corpus's real pages (through the ``corpus`` fixture) scored the way
``python -m bench.web`` scores them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.web import Score, load_expected, score
from processing.documents.base import Block, DocumentError
from processing.documents.html import decode_html
from processing.web import extract
from processing.web.extract import Page, extract_page

pytestmark = pytest.mark.services_free

TARGET = 0.97

# Sentences long enough that trafilatura takes them for an article's prose.
PROSE = [
    "The harbour master opened the new pier on a grey Tuesday morning, long before the "
    "first ferry of the season came around the headland with its horn sounding.",
    "Fishing crews had waited three winters for the work to end, mending nets in the old "
    "sheds while the cranes swung concrete blocks into the cold water below them.",
    "By noon the quay was full of families, and the bakery on the corner had sold every "
    "loaf it baked before dawn, which its owner said had never happened before.",
    "Engineers say the pier should stand for a century, although the sea has a way of "
    "proving engineers wrong, as the ruins of the last one showed everybody in town.",
]
NAV = ["Home", "News", "Sport", "Weather", "Contact us"]


def page(body: str, head: str = "<title>Harbour news</title>", lang: str = "en") -> str:
    return (
        f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'>{head}</head>"
        f"<body>{body}</body></html>"
    )


def menu() -> str:
    links = "".join(f"<li><a href='/{item.lower()}'>{item}</a></li>" for item in NAV)
    return f"<header><nav><ul>{links}</ul></nav></header>"


def paragraphs(texts: list[str]) -> str:
    return "".join(f"<p>{text}</p>" for text in texts)


def footer() -> str:
    return (
        "<footer><p>Copyright 2024 Harbour Gazette Ltd. All rights reserved.</p>"
        "<a href='/privacy'>Privacy policy</a> <a href='/terms'>Terms of use</a></footer>"
    )


# --- the corpus: real pages, scored as the benchmark scores them -----------------------------


def test_corpus_pages_keep_the_text_and_drop_the_boilerplate(corpus: Path) -> None:
    folder = corpus / "web"
    expected = load_expected(folder)
    scores: dict[str, Score] = {}
    for name, entry in expected.items():
        html = decode_html((folder / name).read_bytes())
        scores[name] = score(extract_page(html, url=entry["url"]).text(), entry)
    total = Score.total(list(scores.values()))
    figures = "\n".join(
        f"  {name}: kept {s.kept}/{s.with_total}, dropped {s.dropped}/{s.without_total}"
        for name, s in scores.items()
    )
    assert total.met(TARGET), (
        f"overall kept {total.kept}/{total.with_total}, dropped "
        f"{total.dropped}/{total.without_total} (target {TARGET:.0%} each):\n{figures}"
    )


def test_score_counts_kept_and_dropped_strings() -> None:
    entry = {"with": ["new  pier", "lost line"], "without": ["Home", "Share this"]}
    assert score("The new\npier opened. Home", entry) == Score(1, 2, 1, 2)


# --- metadata ---------------------------------------------------------------------------------


def test_metadata_comes_from_the_page() -> None:
    head = (
        "<title>New pier opens | Harbour Gazette</title>"
        "<meta name='author' content='Jane Doe'>"
        "<meta name='description' content='The harbour has a new pier.'>"
        "<meta property='og:site_name' content='Harbour Gazette'>"
        "<meta property='article:published_time' content='2024-03-05T09:30:00+00:00'>"
        "<link rel='canonical' href='https://gazette.example/2024/pier'>"
    )
    html = page(
        f"{menu()}<article><h1>New pier opens</h1>{paragraphs(PROSE)}</article>", head, "en-GB"
    )
    result = extract_page(html, url="https://gazette.example/2024/pier?utm_source=x")
    assert result.title == "New pier opens"  # trafilatura drops the " | Site" part
    assert result.author == "Jane Doe"
    assert result.date == "2024-03-05"
    assert result.language == "en-GB"
    assert result.canonical_url == "https://gazette.example/2024/pier"
    assert result.site_name == "Harbour Gazette"
    assert result.description == "The harbour has a new pier."
    assert result.metadata() == {
        "title": "New pier opens",
        "author": "Jane Doe",
        "date": "2024-03-05",
        "language": "en-GB",
        "canonical_url": "https://gazette.example/2024/pier",
        "site_name": "Harbour Gazette",
        "description": "The harbour has a new pier.",
    }


def test_metadata_leaves_out_what_the_page_does_not_say() -> None:
    html = f"<html><body><article>{paragraphs(PROSE)}</article></body></html>"
    result = extract_page(html)
    assert result.language is None
    assert result.author is None
    assert set(result.metadata()) <= {"title", "date", "canonical_url", "site_name", "description"}
    assert None not in result.metadata().values()


# --- structure: headings, lists, tables, code -----------------------------------------------


def test_headings_are_heading_blocks_with_their_levels() -> None:
    body = (
        f"{menu()}<main><article><h1>New pier opens</h1><p>{PROSE[0]}</p>"
        f"<h2>Three winters of work</h2><p>{PROSE[1]}</p>"
        f"<h3>The cranes</h3><p>{PROSE[2]}</p>"
        f"<h2>A century, they say</h2><p>{PROSE[3]}</p></article></main>{footer()}"
    )
    result = extract_page(page(body))
    assert result.blocks == [
        Block("New pier opens", kind="heading", level=1),
        Block(PROSE[0]),
        Block("Three winters of work", kind="heading", level=2),
        Block(PROSE[1]),
        Block("The cranes", kind="heading", level=3),
        Block(PROSE[2]),
        Block("A century, they say", kind="heading", level=2),
        Block(PROSE[3]),
    ]
    assert result.text() == "\n\n".join(block.text for block in result.blocks)


def test_lists_tables_and_code_keep_their_shape() -> None:
    body = (
        f"{menu()}<article>{paragraphs(PROSE[:2])}"
        "<ul><li>Concrete blocks: 4,000</li><li>Steel piles: 120</li></ul>"
        "<table><tr><th>Year</th><th>Ferries</th></tr><tr><td>2023</td><td>0</td></tr>"
        "<tr><td>2024</td><td>14</td></tr></table>"
        "<pre><code>def tide(hour):\n    return hour % 12\n</code></pre>"
        f"{paragraphs(PROSE[2:])}</article>{footer()}"
    )
    blocks = extract_page(page(body)).blocks
    assert Block("- Concrete blocks: 4,000\n- Steel piles: 120", kind="list") in blocks
    assert Block("Year | Ferries\n2023 | 0\n2024 | 14", kind="table") in blocks
    code = [block.text for block in blocks if "def tide" in block.text]
    assert code == ["def tide(hour):\n    return hour % 12"]


# --- boilerplate --------------------------------------------------------------------------------


def test_navigation_footer_and_reader_comments_are_dropped() -> None:
    comments = (
        "<section id='comments' class='comments-area'><h2 class='comments-title'>3 thoughts "
        "on New pier opens</h2><ol class='comment-list'>"
        "<li class='comment'><article class='comment-body'><footer class='comment-meta'>"
        "<b class='fn'>Bob Smith</b> says: <time>March 5, 2024</time></footer>"
        "<div class='comment-content'><p>Finally! My grandfather fished off the old pier "
        "every Sunday for forty years and would have loved to see this day.</p></div>"
        "</article></li></ol><div id='respond'><h3>Leave a Reply</h3><form><textarea>"
        "</textarea><button>Post Comment</button></form></div></section>"
    )
    related = (
        "<aside class='related'><h3>Related posts</h3><ul><li><a href='/a'>Ferry fares to "
        "rise in spring</a></li><li><a href='/b'>Storm closes the coast road</a></li></ul>"
        "</aside>"
    )
    article = f"<article><h1>New pier opens</h1>{paragraphs(PROSE)}</article>"
    body = f"{menu()}{article}{related}{comments}{footer()}"
    text = extract_page(page(body)).text()
    for sentence in PROSE:
        assert sentence in text
    for boilerplate in [
        *NAV,
        "grandfather fished",
        "Leave a Reply",
        "Related posts",
        "Storm closes",
        "All rights reserved",
        "Privacy policy",
    ]:
        assert boilerplate not in text


def test_the_authors_own_reply_under_the_post_is_kept_as_a_comment() -> None:
    """Rule 6: the page's author answering in the comments is the author's text."""

    def comment(name: str, text: str) -> str:
        return (
            "<li class='comment'><article class='comment-body'><footer class='comment-meta'>"
            f"<b class='fn'>{name}</b> says: <time>March 6, 2024</time></footer>"
            f"<div class='comment-content'><p>{text}</p></div></article></li>"
        )

    reader = "Will the ferry to the islands stop at the new pier, or still at the old quay?"
    reply = "It will stop at the new pier from May, once the ticket office has moved there."
    body = (
        f"{menu()}<article><h1>New pier opens</h1>{paragraphs(PROSE)}</article>"
        "<section id='comments' class='comments-area'><ol class='comment-list'>"
        f"{comment('Bob Smith', reader)}{comment('Jane Doe', reply)}</ol></section>{footer()}"
    )
    head = "<title>New pier opens</title><meta name='author' content='Jane Doe'>"
    result = extract_page(page(body, head))
    assert reader not in result.text()
    assert result.blocks[-1] == Block(f"Jane Doe: {reply}", kind="comment")


def test_a_note_just_before_the_article_is_kept() -> None:
    """Rule 4: an editor's note sitting before the article element, outside it."""
    body = (
        f"{menu()}<main><div class='byline'><a href='/jane'>Jane Doe</a> 5 March 2024</div>"
        "<section class='note'><p>This story first appeared in the <a href='/weekly'>Coast "
        "Weekly</a>.</p></section>"
        f"<article>{paragraphs(PROSE)}</article></main>{footer()}"
    )
    result = extract_page(page(body))
    assert result.blocks[0] == Block("This story first appeared in the Coast Weekly.")
    assert "5 March 2024" not in result.text()


def test_a_credit_line_under_a_picture_goes_with_the_picture() -> None:
    """Rule 5: a picture, a line break and a short line is a caption."""
    body = (
        f"{menu()}<article>{paragraphs(PROSE[:2])}"
        "<p><img src='/pier.jpg' alt='The pier'><br><em>(Photo: Harbour Gazette)</em></p>"
        f"{paragraphs(PROSE[2:])}</article>{footer()}"
    )
    text = extract_page(page(body)).text()
    assert "Photo: Harbour Gazette" not in text
    assert all(sentence in text for sentence in PROSE)


# --- pages with nothing to read, and hostile ones -------------------------------------------


def test_a_page_of_navigation_only_has_no_main_content() -> None:
    links = "".join(f"<li><a href='/s{i}'>Section {i}</a></li>" for i in range(40))
    html = page(f"{menu()}<div class='menu'><ul>{links}</ul></div>{footer()}")
    with pytest.raises(DocumentError) as caught:
        extract_page(html)
    assert caught.value.code == "no_main_content"
    assert "No main text" in caught.value.message


@pytest.mark.parametrize("html", ["", "   \n\t  "])
def test_an_empty_page_is_an_empty_file(html: str) -> None:
    with pytest.raises(DocumentError) as caught:
        extract_page(html)
    assert caught.value.code == "empty_file"


def test_a_page_past_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "MAX_HTML_BYTES", 4096)
    html = page(f"<article>{paragraphs(PROSE * 20)}</article>")
    with pytest.raises(DocumentError) as caught:
        extract_page(html)
    assert caught.value.code == "file_too_large"


def test_deeply_nested_markup_ends_cleanly() -> None:
    depth = 100_000
    html = page("<div>" * depth + paragraphs(PROSE) + "</div>" * depth)
    started = time.monotonic()
    try:
        result = extract_page(html)
    except DocumentError as exc:
        assert exc.code in ("no_main_content", "document_invalid")
    else:
        assert isinstance(result, Page)
    assert time.monotonic() - started < 30


def test_malformed_markup_is_read() -> None:
    body = f"<article><p>{PROSE[0]}<p>{PROSE[1]}<div><p>{PROSE[2]}</span></b><p>{PROSE[3]}"
    text = extract_page(f"<html><body>{menu()}{body}").text()
    assert all(sentence in text for sentence in PROSE)


def test_a_windows_1252_page_reads_through_decode_html() -> None:
    """The job decodes bytes with ``decode_html`` (meta charset) before extracting."""
    prose = [f"{sentence} Café crème for the crews." for sentence in PROSE]
    html = page(f"{menu()}<article>{paragraphs(prose)}</article>").replace(
        "<meta charset='utf-8'>", "<meta charset='windows-1252'>"
    )
    text = extract_page(decode_html(html.encode("cp1252"))).text()
    assert "Café crème" in text


def test_a_few_links_that_both_runs_agree_on_are_still_a_menu() -> None:
    html = page("<nav><a href='/'>Home</a> <a href='/x'>More</a> <a href='/y'>Contact</a></nav>")
    with pytest.raises(DocumentError) as caught:
        extract_page(html)
    assert caught.value.code == "no_main_content"
