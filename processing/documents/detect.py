"""Which extractor a file needs, decided from its bytes and never from its name.

Uploads are named by people and by browsers: a PNG called ``report.pdf`` or random bytes
called ``slides.pptx`` must fail with a message that says what the file really is, before
any parser library gets to misread it.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from pathlib import Path

from processing.documents.base import DocumentError

# How much of the head is read to decide; also the sample text and Markdown are judged on.
SNIFF_BYTES = 64 * 1024
# PDF readers accept junk before the header; Acrobat looks within the first 1024 bytes.
_PDF_HEADER_WINDOW = 1024
_PDF_HEADER = b"%PDF-"
# The head ``has_pdf_header`` needs: a header starting anywhere in the window.
PDF_HEAD_BYTES = _PDF_HEADER_WINDOW + len(_PDF_HEADER)
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
# Bounded reads of the small ZIP members that name the format.
_MIMETYPE_BYTES = 256
_CONTENT_TYPES_BYTES = 1024 * 1024

# Magic numbers of common files we do not extract, so the error can name them.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG image"),
    (0, b"\xff\xd8\xff", "JPEG image"),
    (0, b"GIF87a", "GIF image"),
    (0, b"GIF89a", "GIF image"),
    (0, b"II*\x00", "TIFF image"),
    (0, b"MM\x00*", "TIFF image"),
    (0, b"8BPS", "Photoshop image"),
    (0, b"\x00\x00\x01\x00", "icon image"),
    (0, b"\x1f\x8b", "gzip archive"),
    (0, b"BZh", "bzip2 archive"),
    (0, b"\xfd7zXZ\x00", "xz archive"),
    (0, b"(\xb5/\xfd", "zstd archive"),
    (0, b"7z\xbc\xaf'\x1c", "7-Zip archive"),
    (0, b"Rar!\x1a\x07", "RAR archive"),
    (257, b"ustar", "tar archive"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy or password-protected Microsoft Office file"),
    (0, b"{\\rtf", "RTF document"),
    (0, b"%!PS", "PostScript document"),
    (0, b"ID3", "MP3 audio"),
    (0, b"OggS", "Ogg media"),
    (0, b"fLaC", "FLAC audio"),
    (0, b"\x1aE\xdf\xa3", "Matroska/WebM video"),
    (0, b"\x7fELF", "executable program"),
    (0, b"\xca\xfe\xba\xbe", "executable program"),
    (0, b"\xcf\xfa\xed\xfe", "executable program"),
    (0, b"\x00asm", "WebAssembly module"),
    (0, b"SQLite format 3\x00", "SQLite database"),
    (0, b"wOFF", "web font"),
    (0, b"wOF2", "web font"),
)
_RIFF_KINDS = {b"WAVE": "WAV audio", b"AVI ": "AVI video", b"WEBP": "WebP image"}

# Main-part content types in [Content_Types].xml, macro-enabled and template variants too.
_OOXML_TYPES = (
    ("wordprocessingml.document.main+xml", "docx"),
    ("wordprocessingml.template.main+xml", "docx"),
    ("ms-word.document.macroenabled.main+xml", "docx"),
    ("ms-word.template.macroenabledtemplate.main+xml", "docx"),
    ("presentationml.presentation.main+xml", "pptx"),
    ("presentationml.slideshow.main+xml", "pptx"),
    ("presentationml.template.main+xml", "pptx"),
    ("ms-powerpoint.presentation.macroenabled.main+xml", "pptx"),
    ("spreadsheetml.sheet.main+xml", "xlsx"),
    ("spreadsheetml.template.main+xml", "xlsx"),
    ("ms-excel.sheet.macroenabled.main+xml", "xlsx"),
)
_OOXML_MAIN_PARTS = {
    "word/document.xml": "docx",
    "ppt/presentation.xml": "pptx",
    "xl/workbook.xml": "xlsx",
}
_ODF_NAMES = {
    "application/vnd.oasis.opendocument.spreadsheet": "OpenDocument spreadsheet",
    "application/vnd.oasis.opendocument.presentation": "OpenDocument presentation",
    "application/vnd.oasis.opendocument.graphics": "OpenDocument drawing",
}

# The tags browsers sniff as HTML (WHATWG MIME sniffing), plus a few of today's openers.
_HTML_START = re.compile(
    r"<(?:!doctype\s+html|html|head|body|script|iframe|h[1-6]|div|font|table|a|style|title|"
    r"b|br|p|meta|link|article|section|main|header|nav)(?=[\s>/])",
    re.IGNORECASE,
)
_XML_PROLOG = re.compile(r"\A(?:<\?.*?\?>|<!--.*?-->|<!doctype[^>]*>|\s+)*", re.IGNORECASE | re.S)
# Bounded repeats and no nested ones: these run on 64 KB of untrusted text, possibly a
# single line, and must stay linear.
_MD_ATX = re.compile(r"^#{1,6}[ \t]+\S", re.M)
_MD_SETEXT = re.compile(r"^[ \t]*\S[^\n]*\n(?:={3,}|-{3,})[ \t]*$", re.M)
_MD_FENCE = re.compile(r"^(?:```|~~~)", re.M)
_MD_LIST = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)])[ \t]+\S", re.M)
_MD_LINK = re.compile(r"!?\[[^\[\]\n]{1,300}\]\([^)\s]{1,1000}\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__)[^\s*_][^\n]{0,300}?\1|`[^`\n]{1,300}`")
# Control characters that never appear in real text (tab, newlines, form feed and ESC do).
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f-\x9f]")


def detect_format(path: Path) -> str:
    """Return pdf, docx, pptx, xlsx, odt, epub, html, markdown or text for the file."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        raise DocumentError("File is empty", code="empty_file")
    if has_pdf_header(head):
        return "pdf"
    if head.startswith(_ZIP_MAGIC):
        return _zip_format(path)
    if head.startswith(_EMPTY_ZIP_MAGIC):
        raise _unsupported("empty ZIP archive")
    kind = describe(head)
    if kind is not None:
        raise _unsupported(kind)
    encoding = guess_encoding(head)
    if encoding is None:
        raise _unsupported("unrecognised binary data")
    sample = head.decode(encoding, errors="ignore").lstrip("\ufeff")
    markup = _markup_kind(sample)
    if markup == "svg":
        raise _unsupported("SVG image")
    if markup == "document":
        return "html"
    markdown = looks_like_markdown(sample)
    # A README may open with <p align="center">...: a fragment followed by Markdown is Markdown.
    if markup == "fragment" and not markdown:
        return "html"
    return "markdown" if markdown else "text"


def has_pdf_header(head: bytes) -> bool:
    """Whether the file's first ``PDF_HEAD_BYTES`` hold a PDF header where readers look
    for one; the PDF extractor asks too, so both agree on what a PDF is."""
    return _PDF_HEADER in head[:PDF_HEAD_BYTES]


def describe(head: bytes) -> str | None:
    """Name a file type we do not extract from its magic number, so an error can say what
    a file really is and not only what it is not; None when the bytes name no such type."""
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and len(head) >= 12:
        return _RIFF_KINDS.get(head[8:12], "RIFF media file")
    if head[4:8] == b"ftyp":
        return "MP4/QuickTime media or HEIF image"
    return None


def _unsupported(what: str) -> DocumentError:
    return DocumentError(f"Unsupported file type: {what}", code="unsupported_type")


def _zip_format(path: Path) -> str:
    """Tell the ZIP-based formats apart by the members that declare them."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                mimetype = (
                    _read_small(archive, "mimetype", _MIMETYPE_BYTES)
                    .decode("ascii", errors="replace")
                    .strip()
                )
                if mimetype == "application/vnd.oasis.opendocument.text":
                    return "odt"
                if mimetype == "application/epub+zip":
                    return "epub"
                if mimetype in _ODF_NAMES:
                    raise _unsupported(_ODF_NAMES[mimetype])
            if "[Content_Types].xml" in names:
                types = _read_small(archive, "[Content_Types].xml", _CONTENT_TYPES_BYTES)
                lowered = types.decode("utf-8", errors="replace").lower()
                for marker, fmt in _OOXML_TYPES:
                    if marker in lowered:
                        return fmt
            for part, fmt in _OOXML_MAIN_PARTS.items():
                if part in names:
                    return fmt
            if "META-INF/container.xml" in names:
                return "epub"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise DocumentError(
            "File is not a valid ZIP archive (it may be truncated or damaged)",
            code="invalid_archive",
        ) from exc
    raise _unsupported("ZIP archive that is not a Word, PowerPoint, Excel, ODT or EPUB file")


def _read_small(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """Read at most ``limit`` bytes of a member: detection never inflates a whole part."""
    try:
        with archive.open(name) as member:
            return member.read(limit)
    except (NotImplementedError, RuntimeError, zipfile.BadZipFile) as exc:
        raise DocumentError(
            f"File is a ZIP archive whose {name!r} member cannot be read",
            code="invalid_archive",
        ) from exc


def guess_encoding(sample: bytes) -> str | None:
    """The codec that reads ``sample`` as text, or None when it looks like binary data.

    UTF-8 first (with or without BOM), UTF-16/32 by BOM or by the NUL pattern of mostly
    ASCII UTF-16, then cp1252 (latin-1 for its five undefined bytes). Whatever decodes must
    also be free of control characters that never appear in text.
    """
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    for bom, codec in boms:
        if sample.startswith(bom):
            return codec if _is_text(sample, codec) else None
    if b"\x00" in sample:
        codec = _utf16_without_bom(sample)
        return codec if codec and _is_text(sample, codec) else None
    for codec in ("utf-8", "cp1252", "latin-1"):
        if _is_text(sample, codec):
            return codec
    return None


def _utf16_without_bom(sample: bytes) -> str | None:
    even, odd = sample[0::2], sample[1::2]
    if len(sample) < 4:
        return None
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _is_text(sample: bytes, codec: str) -> bool:
    try:
        # final=False: the sample may end in the middle of a multi-byte character.
        text = codecs.getincrementaldecoder(codec)().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    if "\x00" in text:
        return False
    controls = len(_CONTROL.findall(text))
    return controls <= max(2, len(text) // 200)


def _markup_kind(sample: str) -> str | None:
    """ "document" (an HTML page), "fragment" (starts with an HTML tag), "svg", or None."""
    if not sample.lstrip().startswith("<"):
        return None
    prolog = _XML_PROLOG.match(sample)
    rest = sample[prolog.end() :] if prolog else sample
    if "<!doctype html" in sample[: len(sample) - len(rest)].lower():
        return "document"
    start = _HTML_START.match(rest)
    if start:
        tag = start.group(0)[1:].lower()
        return "document" if tag in ("html", "head", "body") else "fragment"
    if rest[:4].lower() == "<svg":
        return "svg"
    return None


def looks_like_markdown(sample: str) -> bool:
    """True when the text shows Markdown structure, not just a stray ``#`` or dash.

    A heading on the first line, a setext heading or a code fence is enough; otherwise two
    different kinds of signal (headings, lists, links, emphasis) must be present, so a shell
    script's ``# comment`` or a plain list of dashes stays plain text.
    """
    first = sample.lstrip().split("\n", 1)[0]
    if _MD_ATX.match(first) and not first.startswith("#!"):
        return True
    if _MD_FENCE.search(sample) or _MD_SETEXT.search(sample):
        return True
    signals = [
        _MD_ATX.search(sample),
        len(_MD_LIST.findall(sample)) >= 2 or None,
        _MD_LINK.search(sample),
        _MD_EMPHASIS.search(sample),
    ]
    return sum(1 for signal in signals if signal) >= 2
