"""Web extraction end to end: ``POST /api/v1/extract/async`` (and ``POST /api/v1/jobs/``),
a real worker on the ``web`` queue fetching from a loopback server, the main content
stored as memories that cite the page, a PDF behind a URL read as a document, a page
whose text only scripts write read with ``render_js``, and the failures a user can act on.
"""

from __future__ import annotations

import http.server
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.models import JobStatus
from processing.models import Memory
from tests import documents
from tests.browser import chromium_path
from tests.helpers import wait_status

pytestmark = [pytest.mark.worker]

ARTICLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Tidal Power in Small Harbours | Coastal Notes</title>
<meta name="author" content="Ada Lovelace">
<meta property="article:published_time" content="2026-11-02">
<link rel="canonical" href="https://coastal.example.org/tidal-power">
</head><body>
<nav><a href="/">Home</a> <a href="/about">About us</a> <a href="/shop">Shop the store</a></nav>
<main><article>
<h1>Tidal Power in Small Harbours</h1>
<p>Small harbours see two tides a day, and each one moves a surprising amount of water
through a narrow mouth. A low barrage with a handful of turbines can turn that flow into
steady power for the quay, the ice plant and the boatyard without any fuel at all.</p>
<h2>Sizing the turbines</h2>
<p>The turbines are sized from the tidal range and the basin area rather than from peak
demand. A basin of four hectares with a range of three metres stores enough water to run
two small bulb turbines for most of each ebb, which matches the boatyard's working day.</p>
<h2>Keeping the fish safe</h2>
<p>Slow turbines with wide blade spacing let fish pass unharmed, and the sluices stay open
at slack water so migrating eels can move between the basin and the sea every night.</p>
</article></main>
<aside><h3>Related posts</h3><ul><li><a href="/a">Wave farms revisited</a></li>
<li><a href="/b">Ten harbour walks</a></li></ul></aside>
<footer>Copyright 2026 Coastal Notes. Subscribe to our newsletter for weekly updates.</footer>
</body></html>
"""

# The text is not in the HTML: a script fetches it and writes it into the page.
SCRIPTED = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Scripted notes</title></head>
<body><main id="app"><p>Loading…</p></main>
<script>
fetch('/notes.json').then(r => r.json()).then(data => {
  const app = document.getElementById('app');
  app.innerHTML = '';
  for (const text of data.paragraphs) {
    const p = document.createElement('p');
    p.textContent = text;
    app.appendChild(p);
  }
  const h = document.createElement('h1');
  h.textContent = data.title;
  app.prepend(h);
});
</script></body></html>
"""
NOTES = (
    '{"title": "Lighthouse Keeping Today", "paragraphs": ['
    '"Modern lighthouse keepers rarely live at the light; they visit to service the lamps, '
    'check the batteries and clear the salt from the lantern glass every few weeks.", '
    '"The keepers log every visit, and the logs show that winter storms cause most of the '
    'faults, usually by driving spray through the vents into the electrical cabinets."]}'
)


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A loopback server with an article, a scripted page and a PDF report."""
    (tmp_path / "article.html").write_text(ARTICLE)
    (tmp_path / "scripted.html").write_text(SCRIPTED)
    (tmp_path / "notes.json").write_text(NOTES)
    (tmp_path / "noise.bin").write_bytes(random.Random(7).randbytes(50_000))
    (tmp_path / "chrome.html").write_text(
        "<html><body><nav><a href='/'>Home</a> <a href='/x'>More</a></nav></body></html>"
    )
    documents.pdf_report(tmp_path)
    handler = lambda *a, **k: _Files(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def chromium() -> str:
    return chromium_path()


@pytest.fixture
def collection_id(api, documents_worker, live, settings) -> str:
    settings.JOBSITE_FETCH_ALLOW_HOSTS = "127.0.0.1"  # the API's check at create
    response = api.post("/api/v1/collections/", {"name": "web"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def extract(api, url: str, collection_id: str, **extra) -> str:
    started = time.monotonic()
    response = api.post(
        "/api/v1/extract/async",
        {"url": url, "collection_id": collection_id, **extra},
        format="json",
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and elapsed < 2.0
    return body["jobId"]


def ended(job_id: str, timeout: float = 60):
    return wait_status(job_id, {JobStatus.COMPLETED, JobStatus.FAILED}, timeout)


def test_a_page_becomes_memories_of_its_main_content_citing_the_page(api, collection_id, site):
    url = f"{site}/article.html"
    job = ended(extract(api, url, collection_id, tags=["harbours"]))
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.queue == "web"
    result = job.result
    assert result["format"] == "web" and result["url"] == url and not result["rendered"]
    page = result["page"]
    assert page["title"].startswith("Tidal Power in Small Harbours")
    assert page["author"] == "Ada Lovelace" and page["language"] == "en"
    assert page["canonical_url"] == "https://coastal.example.org/tidal-power"
    memories = list(Memory.objects.filter(job_id=job.pk).order_by("chunk_index"))
    assert memories and result["memories_created"] == len(memories)
    text = "\n".join(memory.text for memory in memories)
    assert "two small bulb turbines" in text and "migrating eels" in text
    for chrome in ("About us", "Related posts", "Ten harbour walks", "Subscribe to our"):
        assert chrome not in text
    assert {memory.source for memory in memories} == {url}
    assert all(memory.tags == ["harbours"] for memory in memories)
    assert memories[0].metadata["author"] == "Ada Lovelace"
    headings = {memory.position.get("heading") for memory in memories}
    assert "Keeping the fish safe" in headings or "Sizing the turbines" in headings
    found = api.get(
        "/api/v1/memories/search", {"q": "bulb turbines", "collection_id": collection_id}
    ).json()
    assert found["results"] and found["results"][0]["source"] == url

    again = ended(extract(api, url, collection_id))  # the same URL again: replaced, not added
    assert again.status == JobStatus.COMPLETED
    assert Memory.objects.filter(collection_id=collection_id).count() == len(memories)


def test_the_same_job_through_the_jobs_api_and_a_pdf_behind_a_url(api, collection_id, site):
    response = api.post(
        "/api/v1/jobs/",
        {
            "type": "web_extraction",
            "params": {"url": f"{site}/report.pdf", "collection_id": collection_id},
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    job = ended(response.json()["job_id"])
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.result["format"] == "pdf" and job.result["pages"] == documents.PDF_PAGES
    assert Memory.objects.filter(job_id=job.pk, source=f"{site}/report.pdf").exists()


def test_failures_say_what_went_wrong_and_refused_urls_are_400s(api, collection_id, site):
    missing = ended(extract(api, f"{site}/no-such-page.html", collection_id))
    assert missing.status == JobStatus.FAILED and "404" in missing.error_message
    noise = ended(extract(api, f"{site}/noise.bin", collection_id))
    assert noise.status == JobStatus.FAILED and noise.error_code == "unsupported_type"
    chrome = ended(extract(api, f"{site}/chrome.html", collection_id))
    assert chrome.status == JobStatus.FAILED and chrome.error_code == "no_main_content"
    port = site.rsplit(":", 1)[1]
    # 127.0.0.2 is loopback too, but not on the allow list: refused at create, unsent.
    refused = (
        f"http://127.0.0.2:{port}/article.html",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/",
        "file:///etc/passwd",
    )
    for url in refused:
        response = api.post(
            "/api/v1/extract/async", {"url": url, "collection_id": collection_id}, format="json"
        )
        assert response.status_code == 400, (url, response.content)


def test_a_page_written_by_scripts_needs_render_js(api, collection_id, site, chromium):
    url = f"{site}/scripted.html"
    plain = ended(extract(api, url, collection_id))
    kept = "" if plain.status == JobStatus.FAILED else str(plain.result)
    assert "lantern glass" not in kept and "lantern glass" not in "".join(
        Memory.objects.filter(job_id=plain.pk).values_list("text", flat=True)
    )
    rendered = ended(extract(api, url, collection_id, render_js=True), timeout=90)
    assert rendered.status == JobStatus.COMPLETED, rendered.error_message
    assert rendered.result["rendered"] is True and rendered.result["render"]["loaded"]
    assert rendered.result["render"]["requests"] >= 2 and rendered.result["render"]["refused"] == []
    text = "\n".join(Memory.objects.filter(job_id=rendered.pk).values_list("text", flat=True))
    assert "clear the salt from the lantern glass" in text
    assert "winter storms cause most of the faults" in text
