"""Chunking along a document's structure: pure functions, no database."""

from __future__ import annotations

import pytest

from processing.chunking import chunk_unit, last_heading, split_text, tail
from processing.documents.base import Block, Unit

pytestmark = pytest.mark.services_free


def words(n: int, word: str = "lorem") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def test_short_paragraphs_gather_toward_the_target_size():
    unit = Unit(7, "page", [Block(words(20)) for _ in range(10)])  # ~150 chars each
    chunks = chunk_unit(unit, size=500, overlap=0)
    assert len(chunks) > 1
    assert all(len(c.text) <= 500 for c in chunks)
    assert all(c.unit == 7 and c.position()["page"] == 7 for c in chunks)
    # Every paragraph lands whole in exactly one chunk.
    joined = "\n\n".join(c.text for c in chunks)
    assert joined.count("lorem0 ") == 10


def test_a_heading_starts_a_new_chunk_and_is_recorded():
    unit = Unit(
        1,
        "section",
        [
            Block("Intro", "heading", 1),
            Block("a " * 50),
            Block("Methods", "heading", 1),
            Block("b"),
        ],
    )
    chunks = chunk_unit(unit, size=2000, overlap=100)
    assert [c.heading for c in chunks] == ["Intro", "Methods"]
    assert chunks[1].text.startswith("Methods")  # no overlap carried across a section
    assert chunks[1].blocks == (2, 3)


def test_long_paragraph_is_cut_at_sentences_and_never_inside_a_word():
    sentence = "The quick brown fox jumps over the lazy dog. "
    text = (sentence * 60).strip()
    parts = split_text(text, 300)
    assert all(len(p) <= 300 for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(parts).split() == text.split()
    no_sentences = words(400)
    parts = split_text(no_sentences, 250)
    assert " ".join(parts).split() == no_sentences.split()


def test_overlap_repeats_whole_words_from_the_previous_chunk():
    unit = Unit(3, "page", [Block(words(30, "alpha")), Block(words(30, "beta"))])
    chunks = chunk_unit(unit, size=300, overlap=60)
    assert len(chunks) == 2
    carried = chunks[1].text.split("\n\n")[0]
    assert 0 < len(carried) <= 60 and chunks[0].text.endswith(carried)
    assert carried.split()[0].startswith("alpha")  # starts on a word boundary
    assert chunks[1].overlap == len(carried)


def test_heading_in_force_carries_to_the_next_page():
    page1 = Unit(1, "page", [Block("Chapter 2", "heading", 1), Block("text")])
    page2 = Unit(2, "page", [Block("more text")])
    heading = last_heading(page1, None)
    assert chunk_unit(page2, size=1000, overlap=0, heading=heading)[0].heading == "Chapter 2"


def test_ocr_pages_are_marked_in_the_position():
    chunk = chunk_unit(Unit(4, "page", [Block("scanned")], ocr=True), size=500, overlap=0)[0]
    assert chunk.position() == {"page": 4, "blocks": [0, 0], "ocr": True}


def test_tail_starts_at_a_word():
    assert tail("one two three four", 9) == "four"
    assert tail("short", 10) == "short"
    assert tail("anything", 0) == ""


def test_running_headers_of_pages_stay_out_of_memories_but_docx_headers_stay_in():
    blocks = [Block("4 1.1. TOPOLOGISCHE RÄUME", "header"), Block("body"), Block("12", "footer")]
    page = chunk_unit(Unit(4, "page", blocks), size=500, overlap=0)
    assert [c.text for c in page] == ["body"]
    section = chunk_unit(Unit(1, "section", blocks), size=500, overlap=0)
    assert "TOPOLOGISCHE" in section[0].text
