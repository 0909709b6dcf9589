"""ZIP safety: bombs fail fast and in bounded memory, entity declarations are refused
wherever they hide, and declared sizes are never trusted when we read a member. The bombs
are made by ``tests/documents.py``; the corpus's own (through the ``corpus`` fixture) are
checked the same way."""

from __future__ import annotations

import os
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from processing.documents import archive, open_document
from processing.documents.archive import check_zip, read_member
from processing.documents.base import DocumentError, Limits
from tests import documents

pytestmark = pytest.mark.services_free

MB = 1024 * 1024

ENTITIES = (
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;">]>'
    b"<root>&lol1;</root>"
)


def write_zip(tmp_path: Path, members: dict[str, bytes], name: str = "a.docx") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def failure(call, *args, **kwargs) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        call(*args, **kwargs)
    return info.value


# --- the bombs, made here and from the corpus ------------------------------------------------

SOURCES = ["made", "corpus"]


def bomb(request: pytest.FixtureRequest, source: str, name: str) -> Path:
    """The corpus's ``bad/<name>.docx``, or the same kind of bomb made here."""
    if source == "corpus":
        return request.getfixturevalue("corpus") / "bad" / f"{name}.docx"
    folder = request.getfixturevalue("tmp_path")
    build = {"zipbomb": documents.docx_zip_bomb, "billion-laughs": documents.docx_billion_laughs}
    return build[name](folder).path


@pytest.mark.parametrize("source", SOURCES)
def test_zipbomb_fails_fast_without_inflating(request: pytest.FixtureRequest, source: str) -> None:
    path = bomb(request, source, "zipbomb")
    with zipfile.ZipFile(path) as zf:  # it is a bomb: one part inflates past the limit
        assert max(info.file_size for info in zf.infolist()) > Limits().max_unzipped_bytes
    tracemalloc.start()
    started = time.perf_counter()
    error = failure(open_document, path, Limits())
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert error.code == "archive_too_large"
    assert "DOCX archive expands beyond 200 MB" in error.message
    assert elapsed < 2
    assert peak < 5 * MB  # the big part was never inflated


@pytest.mark.parametrize("source", SOURCES)
def test_zipbomb_caught_by_ratio_even_under_a_generous_size_limit(
    request: pytest.FixtureRequest, source: str
) -> None:
    path = bomb(request, source, "zipbomb")
    started = time.perf_counter()
    error = failure(check_zip, path, Limits(max_unzipped_bytes=4 * 1024 * MB))
    assert time.perf_counter() - started < 2
    assert error.code == "archive_too_large"
    assert "compression ratio" in error.message


@pytest.mark.parametrize("source", SOURCES)
def test_billion_laughs_is_refused(request: pytest.FixtureRequest, source: str) -> None:
    path = bomb(request, source, "billion-laughs")
    started = time.perf_counter()
    error = failure(open_document, path, Limits())
    assert time.perf_counter() - started < 2
    assert error.code == "xml_entities"
    assert error.message == (
        "XML entity declarations are not allowed (possible billion-laughs attack)"
    )


@pytest.mark.parametrize("kind", ["docx", "pptx", "xlsx", "odt", "epub"])
def test_made_office_files_pass(kind: str, tmp_path: Path) -> None:
    check_zip(documents.READABLE[kind](tmp_path).path, Limits())


def test_real_office_files_pass(corpus: Path) -> None:
    paths = sorted((corpus / "office").iterdir())
    assert {path.suffix for path in paths} == {".docx", ".pptx"}  # the folder is not empty
    assert len(paths) >= 8
    for path in paths:
        check_zip(path, Limits())


# --- entity declarations wherever they hide -------------------------------------------------


@pytest.mark.parametrize(
    "part",
    [
        ENTITIES,
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + ENTITIES,
        b" " * 200_000 + ENTITIES,  # whitespace may precede a DOCTYPE
        b"<!--" + b"x" * 200_000 + b"-->" + ENTITIES,  # so may a long comment
        b'<!DOCTYPE r [<!ENTITY % p "x">]><r/>',  # parameter entities too
        b'<!DOCTYPE r [<!ENTITY ext SYSTEM "file:///etc/passwd">]><r>&ext;</r>',  # XXE
        '<?xml version="1.0" encoding="UTF-16"?>'.encode("utf-16")
        + ENTITIES.decode().encode("utf-16-le"),
    ],
)
def test_entity_declarations_in_any_part(tmp_path: Path, part: bytes) -> None:
    # The name proves nothing: parts are found through relationships, not extensions.
    path = write_zip(tmp_path, {"word/document.xml": b"<w/>", "word/media/blob.bin": part})
    assert failure(check_zip, path, Limits()).code == "xml_entities"


def test_entities_behind_an_encoding_expat_cannot_read_are_still_found(tmp_path: Path) -> None:
    part = b'<?xml version="1.0" encoding="x-no-such-codec"?>' + ENTITIES
    path = write_zip(tmp_path, {"content.xml": part})
    assert failure(check_zip, path, Limits()).code == "xml_entities"


def test_plain_doctype_and_entity_text_in_content_are_fine(tmp_path: Path) -> None:
    xhtml = (
        b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
        b'"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd"><html><body>'
        b"<p>&lt;!ENTITY is how XML declares one</p></body></html>"
    )
    path = write_zip(tmp_path, {"OEBPS/ch1.xhtml": xhtml, "image.png": b"\x89PNG\r\n"})
    check_zip(path, Limits())


# --- sizes, counts, damage ------------------------------------------------------------------


def test_too_many_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_MEMBERS", 5)
    path = write_zip(tmp_path, {f"part{i}.xml": b"<a/>" for i in range(6)})
    error = failure(check_zip, path, Limits())
    assert error.code == "archive_too_large"
    assert "members" in error.message


def test_declared_total_over_limit(tmp_path: Path) -> None:
    path = write_zip(tmp_path, {"a.xml": b"<a/>" + b" " * (2 * MB)})
    error = failure(check_zip, path, Limits(max_unzipped_bytes=MB), label="XLSX")
    assert error.code == "archive_too_large"
    assert error.message.startswith("XLSX archive expands beyond 1 MB")


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.docx"
    path.write_bytes(b"PK\x03\x04" + os.urandom(1000))
    assert failure(check_zip, path, Limits()).code == "invalid_archive"


def patch_central_directory(path: Path, offset: int, value: bytes) -> None:
    """Overwrite a field of the (first) central-directory entry."""
    data = bytearray(path.read_bytes())
    start = data.index(b"PK\x01\x02")
    data[start + offset : start + offset + len(value)] = value
    path.write_bytes(bytes(data))


def test_encrypted_member(tmp_path: Path) -> None:
    path = write_zip(tmp_path, {"word/document.xml": b"<w/>"})
    patch_central_directory(path, 8, (1).to_bytes(2, "little"))  # general purpose flag bit 0
    assert failure(check_zip, path, Limits()).code == "encrypted_document"


def test_read_member_caps_what_is_actually_inflated(tmp_path: Path) -> None:
    path = write_zip(tmp_path, {"big.xml": b"<a>" + b"x" * (20 * MB) + b"</a>"})
    tracemalloc.start()
    with zipfile.ZipFile(path) as zf:
        error = failure(read_member, zf, "big.xml", MB, label="ODT")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert error.code == "archive_too_large"
    assert "'big.xml' expands beyond 1 MB" in error.message
    assert peak < 4 * MB


def test_lying_size_header_fails_cleanly(tmp_path: Path) -> None:
    """A member whose header understates its size is cut at the claim and fails its CRC,
    instead of inflating whatever the stream really holds."""
    path = write_zip(tmp_path, {"content.xml": b"x" * (5 * MB)})
    patch_central_directory(path, 24, (1000).to_bytes(4, "little"))  # uncompressed size
    error = failure(check_zip, path, Limits(), label="ODT")
    assert error.code == "invalid_archive"
    assert error.message.startswith("ODT archive member 'content.xml' is damaged")
    with zipfile.ZipFile(path) as zf:
        error = failure(read_member, zf, "content.xml", 10 * MB)
    assert error.code == "invalid_archive"


def test_read_member_missing_part(tmp_path: Path) -> None:
    path = write_zip(tmp_path, {"a.xml": b"<a/>"})
    with zipfile.ZipFile(path) as zf:
        assert "missing" in failure(read_member, zf, "content.xml", MB, label="ODT").message
