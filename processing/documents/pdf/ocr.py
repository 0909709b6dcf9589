"""OCR of scanned pages: telling a scan from a text page, rendering it, and running
Tesseract on it.

Apart because it is a different kind of work from reading a text layer: an external
program with its own failures (not installed, a language missing, too slow), seconds per
page instead of milliseconds, and a switch (``Limits.ocr``). Each failure becomes a
warning on the document, never an error, so the rest of a PDF is still read.
"""

from __future__ import annotations

import functools
import io
import re
import shutil
import subprocess

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from processing.documents.base import Limits
from processing.documents.pdf.glyphs import CLEAN
from processing.documents.pdf.layout import Line, Page, paragraph_text

# A page with less text than this and a large image is treated as a scan and sent to OCR.
OCR_MAX_TEXT_CHARS = 100
OCR_MIN_IMAGE_SHARE = 0.1
OCR_DPI = 300
# A poster-sized page is rendered smaller, to keep the image (and memory) bounded.
OCR_MAX_SIDE = 7000
OCR_TIMEOUT_SECONDS = 120


def looks_scanned(page: pdfium.PdfPage, chars: int) -> bool:
    """Whether a page with ``chars`` characters of text is a scan. The image area is
    measured only for pages short of text, as it walks the page's objects."""
    return chars < OCR_MAX_TEXT_CHARS and image_share(page) >= OCR_MIN_IMAGE_SHARE


def image_share(page: pdfium.PdfPage) -> float:
    """Fraction of the page covered by images, to tell a scan from a sparse text page."""
    width, height = page.get_size()
    if width <= 0 or height <= 0:
        return 0.0
    area = 0.0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4):
        left, bottom, right, top = obj.get_bounds()
        area += max(0.0, min(right, width) - max(left, 0.0)) * max(
            0.0, min(top, height) - max(bottom, 0.0)
        )
    return min(1.0, area / (width * height))


def page_text(
    pdf: pdfium.PdfDocument, page: Page, limits: Limits, warnings: list[str]
) -> str | None:
    """The page's text by OCR, or None (with the reason in ``warnings``) when OCR is off,
    unavailable or fails, so the caller falls back to the page's own text layer."""
    if not limits.ocr:
        _warn_once(warnings, "OCR is turned off: scanned pages were left without text")
        return None
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        _warn_once(warnings, "Tesseract is not installed: scanned pages were left without text")
        return None
    languages = _ocr_languages(tesseract, limits.ocr_languages)
    pdf_page = pdf[page.number - 1]
    try:
        scale = min(OCR_DPI / 72, OCR_MAX_SIDE / max(pdf_page.get_size()))
        image = pdf_page.render(scale=scale, grayscale=True).to_pil()
    finally:
        pdf_page.close()
    buffer = io.BytesIO()
    image.save(buffer, format="PPM")
    try:
        result = subprocess.run(  # noqa: S603 - a fixed program and arguments, no shell
            [tesseract, "stdin", "stdout", "-l", languages, "--dpi", str(round(scale * 72))],
            input=buffer.getvalue(),
            capture_output=True,
            timeout=OCR_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        warnings.append(f"OCR of page {page.number} took over {OCR_TIMEOUT_SECONDS} s")
        return None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        warnings.append(f"OCR of page {page.number} failed: {message[0]}")
        return None
    return result.stdout.decode("utf-8", "replace")


def _warn_once(warnings: list[str], message: str) -> None:
    """A reason that holds for every scanned page is said once, not once per page."""
    if message not in warnings:
        warnings.append(message)


@functools.cache
def _ocr_languages(tesseract: str, wanted: str) -> str:
    """The wanted languages that are installed; Tesseract fails outright on a missing one."""
    try:
        listed = subprocess.run(  # noqa: S603
            [tesseract, "--list-langs"], capture_output=True, timeout=30, check=False
        ).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return wanted
    installed = set(listed.split()[1:]) if listed else set()
    available = [lang for lang in wanted.split("+") if lang in installed]
    return "+".join(available) or "eng"


def paragraphs(text: str) -> list[str]:
    """Tesseract's paragraphs (blank-line separated), with their lines joined by the same
    rule as a text layer's, so a word hyphenated in a scan is re-joined too."""
    lines_by_paragraph = re.split(r"\n\s*\n", text.translate(CLEAN))
    found = []
    for chunk in lines_by_paragraph:
        lines = [line.strip() for line in chunk.splitlines() if line.strip()]
        if lines:
            found.append(paragraph_text([Line(line, 0, 0, 0, 10, False) for line in lines]))
    return found
