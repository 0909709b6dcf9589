"""EPUB e-books: the spine's XHTML documents in reading order, one section each.

Each spine document (usually a chapter) is read with the HTML extractor's structural walk,
never with trafilatura: a book has no site chrome, and every paragraph is content.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

from processing.documents.archive import parse_xml, read_member
from processing.documents.base import Document, DocumentError, Limits, Unit
from processing.documents.html import MAX_HTML_BYTES, decode_html, html_blocks, parse_html
from processing.documents.text import checked_units, describe, one_line

_CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"
_OPF = "http://www.idpf.org/2007/opf"
_DC = "http://purl.org/dc/elements/1.1/"
_ENC = "http://www.w3.org/2001/04/xmlenc#"
_DOCUMENT_TYPES = ("application/xhtml+xml", "text/html", "application/x-dtbook+xml")


def read(path: Path, limits: Limits) -> Document:
    """Read the package document now (spine, title); chapters are parsed on demand."""
    try:
        with zipfile.ZipFile(path) as archive:
            opf_path = _package_path(archive, limits)
            opf = parse_xml(
                read_member(archive, opf_path, limits.max_unzipped_bytes, label="EPUB"),
                what="EPUB package document",
            )
            spine = _spine(opf, posixpath.dirname(opf_path))
            _refuse_drm(archive, spine, limits)
    except DocumentError:
        raise
    except (zipfile.BadZipFile, OSError) as exc:
        raise DocumentError(f"EPUB file cannot be opened: {describe(exc)}") from exc
    title = opf.find(f".//{{{_DC}}}title")
    return Document(
        format="epub",
        unit_count=len(spine),
        units=checked_units(_units(path, spine, limits), limits, label="EPUB"),
        title=(one_line(title.text) or None) if title is not None else None,
    )


def _package_path(archive: zipfile.ZipFile, limits: Limits) -> str:
    container = parse_xml(
        read_member(archive, "META-INF/container.xml", limits.max_unzipped_bytes, label="EPUB"),
        what="EPUB container.xml",
    )
    rootfile = container.find(f".//{{{_CONTAINER}}}rootfile")
    full_path = rootfile.get("full-path") if rootfile is not None else None
    if not full_path:
        raise DocumentError("EPUB file does not name its package document")
    return full_path


def _spine(opf: etree._Element, base: str) -> list[str]:
    """Archive paths of the spine's documents, in reading order."""
    manifest = {item.get("id"): item for item in opf.iter(f"{{{_OPF}}}item")}
    paths = []
    for itemref in opf.iter(f"{{{_OPF}}}itemref"):
        item = manifest.get(itemref.get("idref"))
        if item is None or item.get("media-type") not in _DOCUMENT_TYPES:
            continue
        href = unquote((item.get("href") or "").split("#", 1)[0])
        if href:
            paths.append(posixpath.normpath(posixpath.join(base, href)))
    if not paths:
        raise DocumentError("EPUB file has no readable documents in its spine")
    return paths


def _refuse_drm(archive: zipfile.ZipFile, spine: list[str], limits: Limits) -> None:
    """Encrypted chapters would come out as noise; font obfuscation alone is harmless."""
    if "META-INF/encryption.xml" not in archive.namelist():
        return
    encryption = parse_xml(
        read_member(archive, "META-INF/encryption.xml", limits.max_unzipped_bytes, label="EPUB"),
        what="EPUB encryption.xml",
    )
    encrypted = {
        posixpath.normpath(unquote(reference.get("URI") or ""))
        for reference in encryption.iter(f"{{{_ENC}}}CipherReference")
    }
    if encrypted & set(spine):
        raise DocumentError("EPUB file is DRM-protected", code="encrypted_document")


def _units(path: Path, spine: list[str], limits: Limits) -> Iterator[Unit]:
    cap = min(limits.max_unzipped_bytes, MAX_HTML_BYTES)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        for number, member in enumerate(spine, start=1):
            if member not in names:
                raise DocumentError(f"EPUB file is missing its spine document {member!r}")
            text = decode_html(read_member(archive, member, cap, label="EPUB"))
            if not text.strip():
                yield Unit(number=number, kind="section", blocks=[])
                continue
            root = parse_html(text, what=f"EPUB document {member!r}")
            yield Unit(number=number, kind="section", blocks=html_blocks(root))
