"""Safety checks for ZIP-based formats (DOCX, PPTX, XLSX, ODT, EPUB), run before any
library opens the file.

python-docx, python-pptx and openpyxl read whole parts into memory and parse them with
lxml, so a 1 MB upload whose document part inflates to 1 GiB, or an XML part that nests
entity references (billion laughs), would cost the worker its memory long before a
library noticed. ``check_zip`` refuses such files from the central directory and from the
first bytes of each XML part, without inflating anything large; ``read_member`` is the
only way our own code reads a member, with a hard cap on the bytes actually inflated.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path
from typing import IO
from xml.parsers import expat

from lxml import etree

from processing.documents.base import DocumentError, Limits

# More members than any real document has; each one costs a header read to check.
MAX_MEMBERS = 10_000
# A member that inflates more than this many times its compressed size is a bomb, not a
# document: deflate tops out near 1032:1, real XML parts stay well under 200:1.
MAX_RATIO = 400
# ... but tiny members can reach silly ratios legitimately (a run of zeros in a small file).
RATIO_MIN_BYTES = 8 * 1024 * 1024
_CHUNK = 64 * 1024
# How far into a part we look for its first byte to decide whether it is XML.
_PEEK = 64
_ENTITY_MARKERS = (b"<!ENTITY", "<!ENTITY".encode("utf-16-le"), "<!ENTITY".encode("utf-16-be"))


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f}"


def _size(n: int) -> str:
    """A size for a message: 48 MB, 1.5 MB, 12 KB, 300 bytes."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def check_zip(
    path: Path, limits: Limits, *, label: str = "File", streamed: re.Pattern[str] | None = None
) -> None:
    """Refuse archives that are broken, oversized, bomb-shaped, encrypted, carry XML
    entity declarations or an XML part too large to parse whole (``streamed`` matches
    the names of parts the format's reader streams instead); cheap enough to run on
    every upload."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            _check_sizes(members, limits, label)
            for info in members:
                if not (streamed and streamed.fullmatch(info.filename)):
                    _check_xml_part_size(archive, info, limits, label)
                _check_member_xml(archive, info, limits, label)
    except DocumentError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise DocumentError(
            f"{label} is not a valid ZIP archive (it may be truncated or damaged)",
            code="invalid_archive",
        ) from exc


def _check_sizes(members: list[zipfile.ZipInfo], limits: Limits, label: str) -> None:
    if len(members) > MAX_MEMBERS:
        raise DocumentError(
            f"{label} archive has {len(members):,} members, more than the {MAX_MEMBERS:,} allowed",
            code="archive_too_large",
        )
    declared = sum(info.file_size for info in members)
    if declared > limits.max_unzipped_bytes:
        raise DocumentError(
            f"{label} archive expands beyond {_mb(limits.max_unzipped_bytes)} MB "
            f"(its members declare {_mb(declared)} MB)",
            code="archive_too_large",
        )
    for info in members:
        if info.flag_bits & 0x1:
            raise DocumentError(
                f"{label} is encrypted or password-protected", code="encrypted_document"
            )
        if info.file_size >= RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(
            info.compress_size, 1
        ):
            ratio = info.file_size // max(info.compress_size, 1)
            raise DocumentError(
                f"{label} archive member {info.filename!r} has a compression ratio of "
                f"{ratio:,}:1 (a zip bomb)",
                code="archive_too_large",
            )


def _check_xml_part_size(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits, label: str
) -> None:
    """An XML part over ``max_xml_part_bytes`` would be parsed whole into a tree many
    times its size: lxml then fails with "unknown error" once the job's memory limit is
    reached. Its declared size is the most any reader gets (``zipfile`` stops there)."""
    if info.file_size <= limits.max_xml_part_bytes:
        return
    with _open(archive, info, label) as raw:
        head = _CappedReader(raw, info.filename, limits.max_unzipped_bytes, label).read(_PEEK)
    if _strip_xml_padding(head)[:1] == b"<":
        raise DocumentError(
            f"{label} part {info.filename!r} is {_size(info.file_size)} of XML, more than "
            f"the {_size(limits.max_xml_part_bytes)} a part may have (each is read whole)",
            code="xml_part_too_large",
        )


def _check_member_xml(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits, label: str
) -> None:
    """Look at the prolog of every XML part (by content, not by name: parts are found
    through relationships, so a name proves nothing) for entity declarations."""
    with _open(archive, info, label) as raw:
        stream = _CappedReader(raw, info.filename, limits.max_unzipped_bytes, label)
        if _declares_entities(stream):
            raise DocumentError(
                "XML entity declarations are not allowed (possible billion-laughs attack)",
                code="xml_entities",
            )


def _strip_xml_padding(data: bytes) -> bytes:
    """Drop BOMs, whitespace and the NULs of UTF-16/32, to see the first real character."""
    return data.lstrip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe")


class _StopParsing(Exception):
    """Raised from an expat handler to stop at the root element (or at an entity)."""


def _declares_entities(stream: _CappedReader) -> bool:
    """Parse only the prolog, up to the root element's start tag, and report whether the
    DOCTYPE declares entities; entities cannot be declared anywhere else.

    A member whose first character is not ``<`` is not XML and is left alone after one
    small read. expat handles encodings, comments and processing instructions correctly
    and reports a declaration before anything is expanded. Where expat cannot read the
    prolog (an encoding it does not know, say), the rest of the part is scanned for the
    raw marker instead. Nothing is kept but a 32-byte tail, so memory stays flat.
    """
    parser = expat.ParserCreate()
    found: list[bool] = []

    def on_entity(*_args: object) -> None:
        found.append(True)
        raise _StopParsing

    def on_start(*_args: object) -> None:
        raise _StopParsing

    parser.EntityDeclHandler = on_entity
    parser.UnparsedEntityDeclHandler = on_entity
    parser.StartElementHandler = on_start
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    expat_ok = True
    started = False
    tail = b""
    size = _PEEK
    while chunk := stream.read(size):
        size = _CHUNK
        if not started:
            first = _strip_xml_padding(chunk)[:1]
            if first and first != b"<":
                return False
            started = bool(first)
        if expat_ok:
            try:
                parser.Parse(chunk, False)
                tail = chunk[-32:]
                continue
            except _StopParsing:
                return bool(found)
            except (expat.ExpatError, LookupError, ValueError):
                if not started:
                    # Only padding so far, and not XML's (a run of NULs, say): no XML
                    # parser will read this part, so no entity in it can be expanded.
                    return False
                # LookupError: an encoding Python does not know, raised through expat.
                expat_ok = False
        if any(marker in tail + chunk for marker in _ENTITY_MARKERS):
            return True
        tail = chunk[-32:]
    return bool(found)


def _open(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> IO[bytes]:
    try:
        return archive.open(info)
    except (NotImplementedError, RuntimeError) as exc:
        raise DocumentError(
            f"{label} archive member {info.filename!r} uses an unsupported compression "
            "method or is encrypted",
            code="invalid_archive",
        ) from exc


class _CappedReader:
    """Reads a member while counting the bytes really inflated, whatever the header says."""

    def __init__(self, raw: IO[bytes], name: str, cap: int, label: str) -> None:
        self._raw = raw
        self._name = name
        self._cap = cap
        self._label = label
        self.count = 0

    def read(self, size: int) -> bytes:
        try:
            data = self._raw.read(size)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise DocumentError(
                f"{self._label} archive member {self._name!r} is damaged ({exc})",
                code="invalid_archive",
            ) from exc
        self.count += len(data)
        if self.count > self._cap:
            raise DocumentError(
                f"{self._label} archive member {self._name!r} expands beyond {_mb(self._cap)} MB",
                code="archive_too_large",
            )
        return data


def read_member(
    archive: zipfile.ZipFile, name: str | zipfile.ZipInfo, max_bytes: int, *, label: str = "File"
) -> bytes:
    """The bytes of one member, refusing to inflate more than ``max_bytes`` of it.

    Declared sizes are only claims; this counts what the decompressor actually produces
    and stops one chunk past the cap, so memory stays bounded even for a lying header.
    """
    try:
        info = name if isinstance(name, zipfile.ZipInfo) else archive.getinfo(name)
    except KeyError as exc:
        raise DocumentError(
            f"{label} is missing its {name!r} part", code="document_invalid"
        ) from exc
    parts: list[bytes] = []
    with _open(archive, info, label) as raw:
        stream = _CappedReader(raw, info.filename, max_bytes, label)
        while chunk := stream.read(_CHUNK):
            parts.append(chunk)
    return b"".join(parts)


def safe_xml_parser() -> etree.XMLParser:
    """An lxml parser that never expands entities, loads DTDs or touches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


# How libxml2 words the limits it keeps without XML_PARSE_HUGE (which we never set): a text
# node or attribute value over 10 MB, nesting past 256 levels, a name past 50,000 chars.
_LIMIT_MARKERS = (
    "XML_PARSE_HUGE",
    "Resource limit exceeded",
    "too big",
    "Excessive depth",
    "Name too long",
)


def xml_limit_error(exc: etree.XMLSyntaxError, what: str) -> DocumentError | None:
    """The error to raise when ``exc`` is one of libxml2's limits (not a malformed file)."""
    message = str(exc)
    if not any(marker in message for marker in _LIMIT_MARKERS):
        return None
    return DocumentError(
        f"{what} is too large or too deeply nested for the XML parser ({message})",
        code="xml_too_large",
    )


def parse_xml(data: bytes, *, what: str) -> etree._Element:
    """Parse an XML part with ``safe_xml_parser``; malformed XML is a ``DocumentError``."""
    try:
        root = etree.fromstring(data, parser=safe_xml_parser())
    except etree.XMLSyntaxError as exc:
        error = xml_limit_error(exc, what)
        raise error or DocumentError(f"{what} is not well-formed XML ({exc})") from exc
    if root is None:
        raise DocumentError(f"{what} is empty")
    return root
