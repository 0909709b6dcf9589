"""The ``web_extraction`` job: a URL into searchable memories in a collection.

The page is fetched with the guarded client (every hop's address checked and pinned,
size, time and redirect bounds). What came back decides the path: HTML goes through
main-content extraction (``processing.web.extract``), rendered first in headless Chromium
when ``render_js`` asks (``processing.web.render``, every request of the browser through
the guarded proxy); a PDF or an office file behind the URL goes through the document
pipeline, as if it had been uploaded. Either way the memories are stored like a
document's (``processing.documents.pipeline.ingest``), keyed by the URL, so extracting the
same URL again replaces its memories even when the page has changed.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from jobs.api.base import InvalidInput
from jobs.queues import Queue
from jobs.registry import register
from jobs.runtime import Progress
from processing import selectors
from processing.documents.base import Document, Limits

HTML_TYPES = ("text/html", "application/xhtml+xml")
ACCEPT = "text/html,application/xhtml+xml;q=0.9,application/pdf;q=0.8,*/*;q=0.5"


class WebParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(description="The page (or a PDF or office file) to extract.")
    collection_id: uuid.UUID = Field(description="The collection the memories go into.")
    render_js: bool = Field(
        default=False,
        description="Render the page in headless Chromium first, for pages whose text is "
        "written by scripts (slower; every request the browser makes is checked).",
    )
    tags: list[str] = Field(default_factory=list, max_length=50, description="On every memory.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="On every memory.")
    chunk_size: int | None = Field(
        default=None, ge=200, le=20_000, description="Overrides the collection's, characters."
    )

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: HttpUrl) -> HttpUrl:
        if url.scheme not in ("http", "https"):
            raise ValueError("url must be an http or https URL")
        return url


def check(owner: Any, params: dict[str, Any], has_file: bool) -> None:
    """At create time: a URL the address policy does not refuse on its face (names are
    resolved and checked when fetched), and a collection the caller owns."""
    from jobs import outbound

    try:
        outbound.check_url(params["url"], allow_hosts=outbound.allowed_hosts_from_settings())
    except outbound.FetchError as exc:
        raise InvalidInput(exc.message, details={"url": [exc.message]}) from None
    selectors.require_collection(owner, params["collection_id"])


@register(
    "web_extraction",
    params=WebParams,
    queue=Queue.WEB,
    check=check,
    max_retries=2,
    time_limit=settings.JOBSITE_WEB_TIME_LIMIT,
    memory_limit_mb=settings.JOBSITE_DOC_MEMORY_MB,
    example={"url": "https://example.com/blog/post", "collection_id": "3f1c…"},
)
def extract_web(params: WebParams, progress: Progress) -> dict[str, Any]:
    """Fetch a web page (or the document behind a URL), keep its main content, store it
    as searchable memories with the page's URL as their source."""
    from jobs import outbound
    from processing.documents import open_document
    from processing.documents.detect import detect_format
    from processing.documents.pipeline import collection_for, ingest, limits

    started = time.monotonic()
    collection = collection_for(params.collection_id)
    url = str(params.url)
    with tempfile.TemporaryDirectory(prefix="jobsite-web-") as scratch:
        progress(0, "fetching the page")
        fetched = outbound.fetch(
            url,
            dest=Path(scratch) / "page",
            max_bytes=settings.JOBSITE_MAX_UPLOAD_BYTES,
            timeout=settings.JOBSITE_FETCH_TIMEOUT,
            max_redirects=settings.JOBSITE_FETCH_MAX_REDIRECTS,
            allow_hosts=outbound.allowed_hosts_from_settings(),
            accept=ACCEPT,
        )
        assert fetched.path is not None
        fmt = detect_format(fetched.path)
        if fmt != "html" and fetched.media_type not in HTML_TYPES:
            # A PDF, an office file or plain text behind the URL: the document pipeline.
            progress(1, f"reading the {fmt} document")
            document = open_document(fetched.path, limits(_document_params(params)))
            page_meta: dict[str, Any] = {}
            rendered = None
        else:
            document, page_meta, rendered = _page(params, fetched, progress)
        result = ingest(
            document,
            collection=collection,
            source=url,
            source_hash=_url_key(url),
            progress=progress,
            chunk_size=params.chunk_size,
            tags=params.tags,
            metadata={**page_meta, "url": url, **params.metadata},
        )
    return {
        **result,
        "url": url,
        "final_url": fetched.final_url,
        "rendered": rendered is not None,
        "render": rendered,
        "page": page_meta,
        "duration": round(time.monotonic() - started, 3),
    }


def _page(
    params: WebParams, fetched: Any, progress: Progress
) -> tuple[Document, dict[str, Any], dict[str, Any] | None]:
    """The fetched HTML (or, with ``render_js``, the page as the browser left it) as a
    document of its main content's sections, the page's metadata, and what the browser
    did (None without ``render_js``).

    With ``render_js`` the page was fetched first all the same: that fetch says whether
    the URL serves a page at all (a PDF goes to the document pipeline, an error fails the
    job before a browser starts), and costs one request."""
    from jobs import outbound
    from processing.documents.html import decode_html
    from processing.documents.text import checked_units, sections
    from processing.web.extract import extract_page

    html = decode_html(fetched.path.read_bytes())
    final_url = fetched.final_url
    browser: dict[str, Any] | None = None
    if params.render_js:
        from processing.web.render import render

        progress(1, "rendering the page")
        shown = render(
            str(params.url),
            timeout=settings.JOBSITE_RENDER_TIMEOUT,
            max_bytes=settings.JOBSITE_MAX_UPLOAD_BYTES,
            memory_mb=settings.JOBSITE_RENDER_MEMORY_MB,
            allow_hosts=outbound.allowed_hosts_from_settings(),
        )
        html, final_url = shown.html, shown.final_url
        browser = {
            "seconds": round(shown.seconds, 3),
            "loaded": shown.loaded,
            "requests": len(shown.requests),
            "refused": [event.target for event in shown.refused][:50],
            "bytes_received": shown.bytes_received,
        }
    progress.check()
    progress(2, "extracting the main content")
    page = extract_page(html, url=final_url)
    document = Document(
        format="web",
        unit_count=None,
        units=checked_units(sections(page.blocks), Limits(), label="web page"),
        title=page.title,
    )
    return document, {**page.metadata(), "final_url": final_url}, browser


def _document_params(params: WebParams) -> Any:
    """The document pipeline's limits for a file behind a URL (OCR on, as for uploads)."""
    from processing.documents.pipeline import DocumentParams

    return DocumentParams(collection_id=params.collection_id, chunk_size=params.chunk_size)


def _url_key(url: str) -> str:
    """The memories' source key: the URL as asked, so a re-run replaces them."""
    return hashlib.sha256(f"url:{url}".encode()).hexdigest()
