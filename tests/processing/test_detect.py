"""Format detection: from the bytes, never from the name; unsupported files get a message
that says what they really are. Checked on files made by ``tests/documents.py`` and on the
corpus's real files (through the ``corpus`` fixture)."""

from __future__ import annotations

import codecs
import gzip
import os
import time
import zipfile
from pathlib import Path

import pytest

from processing.documents.base import DocumentError
from processing.documents.detect import detect_format, guess_encoding
from tests import documents

pytestmark = pytest.mark.services_free


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def write_zip(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def refused(path: Path) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        detect_format(path)
    return info.value


# --- files made here, and the corpus's own -------------------------------------------------

# Builder in tests/documents.py: (the corpus's file of the same kind, the message).
REFUSED = {
    "png-named-pdf": ("bad/image-named.pdf", "Unsupported file type: PNG image"),
    "random-named-pptx": ("bad/garbage.pptx", "Unsupported file type: unrecognised binary data"),
    "empty": ("bad/empty.pdf", "File is empty"),
    "wav": (
        "audio/sense_and_sensibility_01_austen_64kb-0870.wav",
        "Unsupported file type: WAV audio",
    ),
}
BUILDERS = {**documents.BAD, "wav": documents.wav}


@pytest.mark.parametrize("source", ["made", "corpus"])
@pytest.mark.parametrize("case", REFUSED)
def test_refused_with_what_the_file_really_is(
    request: pytest.FixtureRequest, case: str, source: str, tmp_path: Path
) -> None:
    relative, message = REFUSED[case]
    if source == "corpus":
        path = request.getfixturevalue("corpus") / relative
    else:
        path = BUILDERS[case](tmp_path).path
    error = refused(path)
    assert error.message == message
    assert error.code == ("empty_file" if case == "empty" else "unsupported_type")


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        *((build, name) for name, build in documents.READABLE.items()),
        (documents.docx_zip_bomb, "docx"),  # detection reads only the central directory
        (documents.docx_billion_laughs, "docx"),
        (documents.pdf_truncated, "pdf"),
        (documents.pdf_encrypted, "pdf"),
        (documents.pdf_scanned, "pdf"),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_made_formats(build, expected: str, tmp_path: Path) -> None:
    assert detect_format(build(tmp_path).path) == expected


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("office/test.docx", "docx"),
        ("office/comments-rich-para.docx", "docx"),
        ("office/cht-chart-type.pptx", "pptx"),
        ("office/ph-populated-placeholders.pptx", "pptx"),
        ("bad/zipbomb.docx", "docx"),  # detection reads only the central directory
        ("pdf/minimal-document.pdf", "pdf"),
        ("bad/truncated.pdf", "pdf"),
        ("web/en.wikipedia.org.tsne.html", "html"),
        ("web/blog.python.org.html", "html"),
        ("ground_truth/GeoTopo-book.txt", "text"),
    ],
)
def test_corpus_formats(corpus: Path, relative: str, expected: str) -> None:
    assert detect_format(corpus / relative) == expected


# --- PDF and binaries -----------------------------------------------------------------------


def test_pdf_header_after_leading_junk(tmp_path: Path) -> None:
    path = write(tmp_path, "x.bin", b"\x00junk" * 100 + b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    assert detect_format(path) == "pdf"


def test_pdf_header_too_far_in_is_not_pdf(tmp_path: Path) -> None:
    path = write(tmp_path, "x.pdf", os.urandom(4096) + b"%PDF-1.7\n")
    assert detect_format_error(path) == "Unsupported file type: unrecognised binary data"


def detect_format_error(path: Path) -> str:
    return refused(path).message


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG image"),
        (b"GIF89a\x01\x00\x01\x00", "GIF image"),
        (gzip.compress(b"hello"), "gzip archive"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "legacy or password-protected"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP image"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00", "MP4/QuickTime media"),
        (b"PK\x05\x06" + bytes(18), "empty ZIP archive"),
        (b"{\\rtf1\\ansi hello}", "RTF document"),
    ],
)
def test_known_binaries_are_named(tmp_path: Path, data: bytes, what: str) -> None:
    message = detect_format_error(write(tmp_path, "upload.pdf", data))
    assert message.startswith(f"Unsupported file type: {what}")


# --- ZIP-based formats ----------------------------------------------------------------------


def content_types(main: str) -> bytes:
    return (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        f'content-types"><Override PartName="/main.xml" ContentType="{main}"/></Types>'
    ).encode()


@pytest.mark.parametrize(
    ("main", "expected"),
    [
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
            "docx",
        ),
        ("application/vnd.ms-word.document.macroEnabled.main+xml", "docx"),
        (
            "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
            "pptx",
        ),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml", "xlsx"),
        ("application/vnd.ms-excel.sheet.macroEnabled.main+xml", "xlsx"),
    ],
)
def test_ooxml_by_content_type_whatever_the_name(tmp_path: Path, main: str, expected: str) -> None:
    path = write_zip(tmp_path, "upload.zip", {"[Content_Types].xml": content_types(main)})
    assert detect_format(path) == expected


def test_ooxml_by_main_part_when_content_types_are_odd(tmp_path: Path) -> None:
    path = write_zip(tmp_path, "a.bin", {"xl/workbook.xml": b"<workbook/>"})
    assert detect_format(path) == "xlsx"


def test_odt_and_epub_by_mimetype(tmp_path: Path) -> None:
    odt = write_zip(tmp_path, "a.zip", {"mimetype": b"application/vnd.oasis.opendocument.text"})
    epub = write_zip(tmp_path, "b.zip", {"mimetype": b"application/epub+zip"})
    ods = write_zip(
        tmp_path, "c.zip", {"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"}
    )
    assert detect_format(odt) == "odt"
    assert detect_format(epub) == "epub"
    assert detect_format_error(ods) == "Unsupported file type: OpenDocument spreadsheet"


def test_other_zip_is_unsupported(tmp_path: Path) -> None:
    path = write_zip(tmp_path, "report.docx", {"photo.jpg": b"\xff\xd8\xff"})
    assert detect_format_error(path).startswith("Unsupported file type: ZIP archive")


def test_truncated_zip_is_invalid(tmp_path: Path) -> None:
    good = write_zip(tmp_path, "a.docx", {"word/document.xml": os.urandom(10_000)})
    data = good.read_bytes()
    path = write(tmp_path, "b.docx", data[: len(data) // 2])
    error = refused(path)
    assert error.code == "invalid_archive"
    assert "not a valid ZIP archive" in error.message


# --- HTML, Markdown and text ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><body><p>Hi</p></body></html>",
        b"\xef\xbb\xbf  \n\n<!doctype HTML>\n<title>x</title>",
        b"<?xml version='1.0' encoding='utf-8'?>\n<html xmlns='http://www.w3.org/1999/xhtml'>",
        b"<!-- saved from url=(0014)about:internet -->\n<html><head></head></html>",
        b"\n<head><meta charset=utf-8><title>t</title></head><body>x</body>",
        b"<div class='x'><p>A fragment of HTML</p></div>",
        "<!DOCTYPE html><p>caf\u00e9</p>".encode("utf-16"),
    ],
)
def test_html_is_sniffed_from_leading_markup(tmp_path: Path, data: bytes) -> None:
    assert detect_format(write(tmp_path, "page.txt", data)) == "html"


def test_svg_is_an_image(tmp_path: Path) -> None:
    path = write(tmp_path, "a.html", b'<?xml version="1.0"?>\n<svg xmlns="x"></svg>')
    assert detect_format_error(path) == "Unsupported file type: SVG image"


def test_readme_opening_with_html_is_markdown(tmp_path: Path) -> None:
    data = b'<p align="center"><img src="logo.png"></p>\n\n# Project\n\n- one\n- two\n'
    assert detect_format(write(tmp_path, "README", data)) == "markdown"


@pytest.mark.parametrize(
    "data",
    [
        b"# Title\n\nSome text.\n",
        b"Intro line\n\n- first\n- second\n\nSee [the docs](https://example.com).\n",
        b"Title\n=====\n\nBody text.\n",
        b"Text\n\n```python\nprint(1)\n```\n",
    ],
)
def test_markdown(tmp_path: Path, data: bytes) -> None:
    assert detect_format(write(tmp_path, "notes.txt", data)) == "markdown"


@pytest.mark.parametrize(
    "data",
    [
        b"Just a plain sentence.\nAnd another line.\n",
        b"#!/bin/sh\n# install the thing\necho hello\n",
        "Gr\u00fc\u00dfe aus K\u00f6ln \u2013 na\u00efve caf\u00e9\n".encode(),
        "Gr\u00fc\u00dfe aus K\u00f6ln \u2013 na\u00efve caf\u00e9\n".encode("cp1252"),
        "UTF-16 text with a BOM\n".encode("utf-16"),
        "UTF-16 text without a BOM, mostly ASCII\n".encode("utf-16-le"),
        b"log line \x1b[31mred\x1b[0m\r\nanother\r\n",
    ],
)
def test_text(tmp_path: Path, data: bytes) -> None:
    assert detect_format(write(tmp_path, "data.pdf", data)) == "text"


def test_control_character_soup_is_binary(tmp_path: Path) -> None:
    data = bytes(range(1, 32)) * 50
    assert detect_format_error(write(tmp_path, "x.txt", data)).endswith("unrecognised binary data")


def test_guess_encoding() -> None:
    assert guess_encoding("h\u00e9llo".encode()) == "utf-8"
    assert guess_encoding(codecs.BOM_UTF8 + b"x") == "utf-8-sig"
    assert guess_encoding("h\u00e9llo \u20ac".encode("cp1252")) == "cp1252"
    assert guess_encoding("hi".encode("utf-16")) == "utf-16"
    assert guess_encoding(os.urandom(4096)) is None
    # A multi-byte character cut at the end of the sample is not an error.
    assert guess_encoding("abc\u20ac".encode()[:-1]) == "utf-8"


@pytest.mark.parametrize(
    "line",
    ["word " * 13_000, "[" * 65_000, "**a" * 20_000, "# " + " " * 64_000 + "x", "_" * 65_000],
)
def test_sniffing_pathological_text_stays_fast(tmp_path: Path, line: str) -> None:
    """The Markdown patterns run on 64 KB of untrusted text; none may backtrack badly."""
    started = time.perf_counter()
    detect_format(write(tmp_path, "a.txt", line.encode()))
    assert time.perf_counter() - started < 0.5
