"""Document extraction: one entry point, ``open_document``, for every supported format.

The format comes from the file's bytes (``detect``), ZIP-based formats pass the archive
checks before any library opens them (``archive``), and each format's module returns the
same ``Document`` of lazily read ``Unit``s (``base``).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from processing.documents.archive import check_zip
from processing.documents.base import Document, DocumentError, Limits
from processing.documents.detect import detect_format

# Format -> extractor module; each module has ``read(path, limits) -> Document``. Imported
# on first use, so a worker that only sees PDFs never loads python-pptx or trafilatura.
_READERS = {
    "pdf": "processing.documents.pdf",
    "docx": "processing.documents.docx",
    "pptx": "processing.documents.pptx",
    "xlsx": "processing.documents.xlsx",
    "odt": "processing.documents.odt",
    "epub": "processing.documents.epub",
    "html": "processing.documents.html",
    "markdown": "processing.documents.text",
    "text": "processing.documents.text",
}
_ZIP_FORMATS = frozenset({"docx", "pptx", "xlsx", "odt", "epub"})
# Parts a reader streams rather than parsing whole, so their size is not a part's limit:
# openpyxl's read-only mode iterparses sheets and shared strings. By name (the names
# openpyxl writes and finds): a file that gives another part such a name is parsed whole
# and meets the job's memory limit instead.
_STREAMED_PARTS = {"xlsx": re.compile(r"xl/(worksheets/[^/]+|sharedStrings)\.xml")}


def open_document(path: Path, limits: Limits) -> Document:
    """Detect, check and open a document; its units are read as the caller iterates."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise DocumentError(
            f"File is larger than {limits.max_bytes // (1024 * 1024)} MB", code="file_too_large"
        )
    fmt = detect_format(path)
    if fmt in _ZIP_FORMATS:
        check_zip(path, limits, label=fmt.upper(), streamed=_STREAMED_PARTS.get(fmt))
    module = importlib.import_module(_READERS[fmt])
    if fmt in ("markdown", "text"):
        return module.read(path, limits, markdown=fmt == "markdown")
    return module.read(path, limits)
