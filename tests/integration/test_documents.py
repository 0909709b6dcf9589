"""Document processing end to end: files in through the API, a real worker on the
``documents`` queue, memories out and searchable, on this run's database and broker. Every
format and every bad file is made here (``tests/documents.py``); the corpus's real files
(through the ``corpus`` fixture) are the real-world layer."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pypdfium2
import pytest
from django.utils import timezone

from jobs import maintenance
from jobs.models import Job, JobStatus
from processing.models import Memory
from tests import documents
from tests.helpers import wait_for, wait_status

GEOTOPO = "pdf/GeoTopo-komprimiert.pdf"
pytestmark = [pytest.mark.worker]


@pytest.fixture
def docs(documents_worker, live):
    return documents_worker


@pytest.fixture
def collection_id(api, docs):
    response = api.post("/api/v1/collections/", {"name": "corpus"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def upload(api, path: Path, collection_id: str, **params) -> str:
    with path.open("rb") as handle:
        response = api.post(
            "/api/v1/jobs/",
            {
                "type": "document_processing",
                "collection_id": collection_id,
                "file": handle,
                **({"params": json.dumps(params)} if params else {}),
            },
            format="multipart",
        )
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def page_phrase(path: Path, page_number: int, words: int = 5) -> str:
    """A run of consecutive plain words from the middle of one page, as the PDF has them."""
    pdf = pypdfium2.PdfDocument(str(path))
    try:
        tokens = pdf[page_number - 1].get_textpage().get_text_range().split()
    finally:
        pdf.close()
    for start in range(len(tokens) // 2, len(tokens) - words):
        run = tokens[start : start + words]
        if all(t.isalpha() for t in run) and len("".join(run)) >= 25:
            return " ".join(run)
    raise AssertionError(f"no plain run of {words} words on page {page_number}")


def test_geotopo_becomes_searchable_memories_that_cite_their_page(api, collection_id, corpus):
    geotopo = corpus / GEOTOPO
    job_id = upload(api, geotopo, collection_id)
    job = wait_status(job_id, {JobStatus.COMPLETED, JobStatus.FAILED}, timeout=120)
    assert job.status == JobStatus.COMPLETED, job.error_message
    result = job.result
    assert result["pages"] == 117 and result["format"] == "pdf"
    assert result["memories_created"] == Memory.objects.filter(job_id=job_id).count() > 117
    assert result["characters"] > 100_000 and result["ocr_pages"] == 0
    assert result["collection_id"] == collection_id
    assert result["source"] == "GeoTopo-komprimiert.pdf"

    phrase = page_phrase(geotopo, 50)
    body = api.get(
        "/api/v1/memories/search",
        {"q": " ".join(phrase.split()[:2]), "collection_id": collection_id, "limit": 100},
    ).json()
    assert body["results"], phrase
    exact = api.get(
        "/api/v1/memories/search", {"q": f'"{phrase}"', "collection_id": collection_id}
    ).json()["results"]
    assert exact, f"no hit for {phrase!r}"
    assert exact[0]["page"] == 50 and exact[0]["position"]["page"] == 50
    assert exact[0]["source"] == "GeoTopo-komprimiert.pdf"
    assert "<mark>" in exact[0]["snippet"]

    # The same file again: its memories are replaced, not duplicated.
    count = Memory.objects.filter(collection_id=collection_id).count()
    again = wait_status(
        upload(api, geotopo, collection_id), {JobStatus.COMPLETED, JobStatus.FAILED}, 120
    )
    assert again.status == JobStatus.COMPLETED, again.error_message
    assert again.result["memories_created"] == 0
    assert again.result["memories_updated"] == count
    assert Memory.objects.filter(collection_id=collection_id).count() == count

    # Purging the job records keeps what they produced.
    Job.objects.filter(pk__in=[job_id, again.pk]).update(
        completed_at=timezone.now() - timedelta(days=40)
    )
    maintenance.purge()
    assert not Job.objects.filter(pk=job_id).exists()
    assert Memory.objects.filter(collection_id=collection_id).count() == count


def memory_texts(job_id: str) -> str:
    return " ".join(
        " ".join(text.split())
        for text in Memory.objects.filter(job_id=job_id).values_list("text", flat=True)
    )


def test_every_format_made_here_becomes_searchable_memories(api, collection_id, tmp_path):
    samples = {kind: build(tmp_path) for kind, build in documents.READABLE.items()}
    jobs = {kind: upload(api, sample.path, collection_id) for kind, sample in samples.items()}
    for kind, job_id in jobs.items():
        job = wait_status(job_id, {JobStatus.COMPLETED, JobStatus.FAILED}, timeout=60)
        assert job.status == JobStatus.COMPLETED, f"{kind}: {job.error_message}"
        assert job.result["format"] == kind
        assert job.result["memories_created"] > 0, kind
        texts = memory_texts(job_id)
        for phrase in samples[kind].text:
            assert " ".join(phrase.split()) in texts, (kind, phrase, texts[:300])
        for phrase in samples[kind].absent:
            assert phrase not in texts, (kind, phrase)
    # A PDF's memories cite their page and leave its running header and footer out.
    report = jobs["pdf"]
    assert Job.objects.get(pk=report).result["pages"] == documents.PDF_PAGES
    texts = memory_texts(report)
    assert documents.PDF_HEADER not in texts and "Printed for the archive" not in texts
    hits = api.get(
        "/api/v1/memories/search",
        {"q": '"counts the quarries"', "collection_id": collection_id, "job_id": report},
    ).json()["results"]
    assert [hit["page"] for hit in hits] == [2]


# A phrase each file's memories must contain (checked against the files themselves).
KNOWN = {
    "pdf/002-trivial-libre-office-writer.pdf": "consetetur sadipscing elitr, sed diam nonumy",
    "pdf/crazyones-pdfa.pdf": "The round pegs in the square holes.",
    "pdf/google-doc-document.pdf": "Beautiful is better than ugly.",
    "pdf/minimal-document.pdf": "Stet clita kasd gubergren",
    "pdf/multicolumn.pdf": "Czech Republic",
    "pdf/pdflatex-outline.pdf": "This text should contain all letters of the",
    "office/test.docx": "python-docx was here",
    "office/par-known-paragraphs.docx": "Normal paragraph",
    "office/hdr-header-footer.docx": "Header for section-1",
    "office/comments-rich-para.docx": "Some text worthy of note",
    "office/ph-populated-placeholders.pptx": "Title Text",
    "office/cht-chart-type.pptx": "1st Qtr",
}


# These two hold no text at all (empty tables; pictures without alt text).
NO_TEXT = {"tbl-having-tables.docx", "having-images.docx"}


def test_every_corpus_document_processes_into_memories(api, collection_id, corpus):
    files = [
        p
        for folder in ("pdf", "office")
        for p in sorted((corpus / folder).iterdir())
        if p.name not in ("libreoffice-writer-password.pdf", Path(GEOTOPO).name)
    ]
    assert len(files) >= 19, files  # eleven PDFs and eight office files
    jobs = {path: upload(api, path, collection_id) for path in files}
    for path, job_id in jobs.items():
        job = wait_status(job_id, {JobStatus.COMPLETED, JobStatus.FAILED}, timeout=120)
        assert job.status == JobStatus.COMPLETED, f"{path.name}: {job.error_message}"
        texts = memory_texts(job_id)
        if path.name in NO_TEXT:
            assert job.result["memories_created"] == 0
            assert "no text" in " ".join(job.result["warnings"])
            continue
        assert job.result["memories_created"] > 0, path.name
        phrase = KNOWN.get(f"{path.parent.name}/{path.name}")
        if phrase:
            assert phrase.lower() in texts.lower(), (path.name, texts[:300])


# The corpus's bad files, by the words their job's error message must hold.
CORPUS_BAD = {
    "bad/truncated.pdf": "",
    "bad/image-named.pdf": "PNG",
    "bad/garbage.pptx": "",
    "bad/zipbomb.docx": "200 MB",
    "bad/billion-laughs.docx": "entit",
    "bad/twenty-thousand-blank-pages.pdf": "pages",
    "pdf/libreoffice-writer-password.pdf": "encrypted",
}


def empty_upload_is_refused(api, collection_id, path: Path) -> None:
    with path.open("rb") as empty:
        refused = api.post(
            "/api/v1/jobs/",
            {"type": "document_processing", "collection_id": collection_id, "file": empty},
            format="multipart",
        )
    assert refused.status_code == 400 and "empty" in refused.json()["error"]["message"]


@pytest.mark.parametrize("source", ["made", "corpus"])
def test_bad_files_fail_with_a_clear_message_and_the_worker_goes_on(
    api, collection_id, request, source, tmp_path
):
    if source == "corpus":
        corpus = request.getfixturevalue("corpus")
        empty = corpus / "bad" / "empty.pdf"
        bad = {corpus / name: (None, words) for name, words in CORPUS_BAD.items()}
        good = corpus / "pdf" / "minimal-document.pdf"
    else:
        empty = documents.empty_pdf(tmp_path).path
        samples = [build(tmp_path) for name, build in documents.BAD.items() if name != "empty"]
        bad = {sample.path: sample.fails_with for sample in samples}
        good = documents.pdf_report(tmp_path).path
    empty_upload_is_refused(api, collection_id, empty)
    jobs = {path: upload(api, path, collection_id) for path in bad}
    for path, job_id in jobs.items():
        job = wait_status(job_id, {JobStatus.COMPLETED, JobStatus.FAILED}, timeout=60)
        code, words = bad[path]
        assert job.status == JobStatus.FAILED, path.name
        assert job.attempts == 1, (path.name, job.attempts)  # bad input is not retried
        assert words.lower() in job.error_message.lower(), (path.name, job.error_message)
        assert job.error_code == code if code else job.error_code, (path.name, job.error_code)
        assert "Traceback" not in job.error_message, path.name
        assert len(job.error_message) < 300, job.error_message
    assert Memory.objects.filter(collection_id=collection_id).count() == 0
    after = wait_status(
        upload(api, good, collection_id), {JobStatus.COMPLETED, JobStatus.FAILED}, 60
    )
    assert after.status == JobStatus.COMPLETED, after.error_message


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    """Serves a folder holding the report made by tests/documents.py."""
    documents.pdf_report(tmp_path)
    handler = lambda *a, **k: _Files(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_file_url_is_fetched_and_other_local_addresses_are_refused(api, collection_id, file_server):
    def create(url):
        response = api.post(
            "/api/v1/jobs/",
            {"type": "document_processing", "collection_id": collection_id, "file_url": url},
            format="json",
        )
        assert response.status_code == 202, response.content
        return response.json()["job_id"]

    fetched = wait_status(create(f"{file_server}/report.pdf"), JobStatus.COMPLETED, 60)
    assert fetched.result["pages"] == documents.PDF_PAGES
    assert Memory.objects.filter(job_id=fetched.pk).first().source.endswith("report.pdf")
    # 127.0.0.2 is loopback too, but not on the worker's allow list: refused unsent.
    port = file_server.rsplit(":", 1)[1]
    refused = wait_status(create(f"http://127.0.0.2:{port}/report.pdf"), JobStatus.FAILED)
    assert refused.error_code == "url_refused" and "127.0.0.2" in refused.error_message
    missing = wait_status(create(f"{file_server}/no-such.pdf"), JobStatus.FAILED, 60)
    assert "404" in missing.error_message


@pytest.fixture
def tesseract():
    if shutil.which("tesseract") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("tesseract is not installed (make install installs tesseract-ocr)")
        pytest.skip("tesseract is not installed (apt-get install tesseract-ocr)")


def test_scanned_pages_are_ocred_and_the_job_cancels_between_pages(
    api, collection_id, tesseract, tmp_path
):
    short = documents.pdf_scanned(tmp_path, pages=2).path
    job = wait_status(
        upload(api, short, collection_id), {JobStatus.COMPLETED, JobStatus.FAILED}, 120
    )
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.result["ocr_pages"] == 2
    memory = Memory.objects.filter(job_id=job.pk, page=2).first()
    assert memory is not None and "scanned page 2" in memory.text.lower()
    assert memory.position.get("ocr") is True

    long = documents.pdf_scanned(tmp_path, pages=40).path
    job_id = upload(api, long, collection_id)
    wait_for(
        lambda: Job.objects.get(pk=job_id).current_step.startswith("page 2 "),
        60,
        "the job to reach page 2",
    )
    response = api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code in (200, 202), response.content
    job = wait_status(job_id, JobStatus.CANCELLED, 60)
    assert not Memory.objects.filter(job_id=job_id).exists()
    assert job.progress < 50
