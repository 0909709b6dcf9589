"""Issue 15, data that poisons reads: what a hostile client could store and then nobody
could read (a lone surrogate, JSON nested past the parser's stack), or what was read
wrongly (a chunked body under WSGI, a crafted cursor, a repeated file part, an XML part too
large to parse). Each is refused at the door with the JSON error shape, and rows written
before the fix still render: in the API, the admin, the live page and the live endpoints.

Tests that need the real server (uvicorn with a worker, or gunicorn for WSGI) are marked
``worker``; the rest run in-process.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
import zipfile
import zlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from openpyxl import Workbook

from jobs import runtime, services
from jobs.models import Job, JobEvent
from processing import services as processing_services
from processing.chunking import Chunk
from processing.documents import open_document, pipeline
from processing.documents.base import DocumentError, Limits
from processing.models import Collection, Memory
from tests import documents

URL = "/api/v1/jobs/"
BAD = "\ud800"  # a lone (high) surrogate: a str Python holds, but no UTF-8 can encode
MB = 1024 * 1024


def error_of(response, status: int) -> dict:
    """The JSON error body of a response that must have ``status``."""
    content = response.content
    assert response.status_code == status, (response.status_code, content[:500])
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(content)["error"]
    assert body["code"] and body["message"]
    return body


def raw(api, body: bytes, content_type: str = "application/json", url: str = URL, **extra):
    return api.generic("POST", url, body, content_type=content_type, **extra)


def only_sqlite() -> None:
    """Rows holding a lone surrogate can exist only on SQLite: PostgreSQL's JSONB refuses
    them at insert, so there is nothing written before the fix to read there."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL refuses lone surrogates at insert: no such rows can exist")


def store(collection: Collection, texts: list[str], *, tags=()) -> list[Memory]:
    chunks = [
        Chunk(text=text, unit=page, unit_kind="page", blocks=(0, 0))
        for page, text in enumerate(texts, start=1)
    ]
    processing_services.memories_store(
        collection_id=collection.pk,
        job_id=None,
        source="notes.txt",
        source_type="text",
        source_hash="h1",
        chunks=chunks,
        tags=tags,
    )
    return list(Memory.objects.filter(collection=collection).order_by("id"))


@pytest.fixture
def collection(user) -> Collection:
    return processing_services.collection_create(owner=user, name="Books")


# --- 6. a lone surrogate, refused at the door ----------------------------------------------

# Raw JSON as a client sends it: the escapes are JSON's, the bytes are plain ASCII.
UNSTORABLE = {
    "high surrogate": (rb'{"type":"echo","params":{"payload":"\ud800"}}', "params.payload"),
    "low surrogate in a list": (
        rb'{"type":"echo","params":{"payload":["ok","\udc00"]}}',
        "params.payload.1",
    ),
    "pair in the wrong order": (
        rb'{"type":"echo","params":{"payload":"\udc00\ud800"}}',
        "params.payload",
    ),
    "in a key": (rb'{"type":"echo","params":{"payload":{"\ud800":1}}}', "params.payload"),
    "NUL (PostgreSQL refuses it)": (
        rb'{"type":"echo","params":{"payload":"a\u0000b"}}',
        "params.payload",
    ),
    "in the type": (rb'{"type":"echo\ud800"}', "type"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("body,path", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_unstorable_text_in_a_json_create_is_400_and_nothing_is_stored(api, body, path):
    error = error_of(raw(api, body), 400)
    assert error["code"] == "invalid_text"
    assert any(name.startswith(path) for name in error["details"]), error
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_surrogate_pair_is_ordinary_text(api):
    response = raw(api, rb'{"type":"echo","params":{"payload":"\ud83d\ude00"}}')
    assert response.status_code == 202, response.content
    assert Job.objects.get().params["payload"] == "\U0001f600"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [rb'{"metadata":{"k":"\ud800"}}', rb'{"tags":["\udfff"]}', rb'{"metadata":{"\u0000":1}}'],
    ids=["metadata", "tags", "NUL key"],
)
def test_unstorable_text_in_a_memory_patch_is_400(api, collection, body):
    [memory] = store(collection, ["some text"])
    response = api.generic(
        "PATCH", f"/api/v1/memories/{memory.pk}/", body, content_type="application/json"
    )
    assert error_of(response, 400)["code"] == "invalid_text"
    memory.refresh_from_db()
    assert memory.metadata == {} and memory.tags == []


@pytest.mark.django_db
def test_unstorable_text_in_a_collection_is_400(api):
    error = error_of(raw(api, rb'{"name":"\ud800"}', url="/api/v1/collections/"), 400)
    assert error["code"] == "invalid_text" and "name" in error["details"]
    assert not Collection.objects.exists()


@pytest.mark.django_db
def test_unstorable_text_in_multipart_params_is_400(api):
    response = api.post(
        URL, {"type": "echo", "params": '{"payload": "\\ud800"}'}, format="multipart"
    )
    error = error_of(response, 400)
    assert error["code"] == "invalid_text" and "params.payload" in error["details"], error
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_charset_that_decodes_to_surrogates_is_415(api, collection):
    """UTF-7 turns plain ASCII into lone surrogates (``+2AA-`` is U+D800), in a body and
    in a query string (Django decodes both with the request's charset)."""
    body = b'{"type":"echo","params":{"payload":"+2AA-"}}'
    error = error_of(raw(api, body, content_type="application/json; charset=utf-7"), 415)
    assert error["code"] == "unsupported_charset"
    assert not Job.objects.exists()
    query = "/api/v1/memories/?source=%2B2AA-"
    response = api.generic("GET", query, content_type="text/plain; charset=utf-7")
    assert error_of(response, 415)["code"] == "unsupported_charset"
    # UTF-8 said out loud is fine.
    response = raw(api, b'{"type":"echo"}', content_type="application/json; charset=UTF-8")
    assert response.status_code == 202, response.content


# --- 6. rows written before the fix still render -------------------------------------------


@pytest.fixture
def poisoned(user, collection) -> tuple[Job, Memory]:
    """What the API stored before the fix (SQLite only): a completed echo job whose params,
    result and an event's data hold a lone surrogate, and a memory whose tags, metadata
    and position hold one."""
    only_sqlite()
    later = timezone.now() + timedelta(hours=1)  # scheduled: no worker claims it first
    job, _ = services.job_create(owner=user, job_type="echo", params={}, actor="test", run_at=later)
    # Written directly: the services refuse such params now (their size check encodes them).
    Job.objects.filter(pk=job.pk).update(
        params={"payload": BAD}, status="completed", progress=100, result={BAD: BAD}
    )
    JobEvent.objects.create(job=job, kind="note", actor="test", data={"payload": BAD})
    [memory] = store(collection, ["plain searchable words"])
    Memory.objects.filter(pk=memory.pk).update(tags=[BAD], metadata={"k": BAD}, position={"p": BAD})
    job.refresh_from_db()
    memory.refresh_from_db()
    return job, memory


@pytest.mark.django_db
def test_poisoned_rows_render_in_the_api(api, poisoned):
    job, memory = poisoned
    detail = api.get(f"{URL}{job.pk}/")
    assert detail.status_code == 200, detail.content[:300]
    # Escaped, not replaced: what was stored comes back as it was.
    assert detail.json()["params"] == {"payload": BAD} and detail.json()["result"] == {BAD: BAD}
    for url in (
        URL,
        f"/api/v1/jobs/status/{job.pk}",
        f"{URL}{job.pk}/events/",
        "/api/v1/memories/",
        f"/api/v1/memories/{memory.pk}/",
        "/api/v1/memories/search?q=searchable",
        "/api/v1/collections/",
    ):
        response = api.get(url)
        assert response.status_code == 200, (url, response.content[:300])
        json.loads(response.content)
    assert api.get(f"/api/v1/memories/{memory.pk}/").json()["tags"] == [BAD]
    # A client can repair the row.
    response = api.patch(f"/api/v1/memories/{memory.pk}/", {"tags": ["fixed"]}, format="json")
    assert response.status_code == 200 and response.json()["tags"] == ["fixed"]


@pytest.mark.django_db
def test_poisoned_rows_render_in_the_admin_and_the_live_page(admin_client, api, poisoned):
    job, memory = poisoned
    event = JobEvent.objects.filter(job=job, kind="note").get()
    for url in (
        "/admin/jobs/job/",
        f"/admin/jobs/job/{job.pk}/change/",
        "/admin/jobs/jobevent/",
        f"/admin/jobs/jobevent/{event.pk}/change/",
        "/admin/processing/memory/",
        f"/admin/processing/memory/{memory.pk}/change/",
        "/admin/processing/collection/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, (url, response.content[-500:])
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content
    assert b"\\ud800" in page  # shown as an escape, so an operator sees what is there
    status_page = api.get(f"{URL}{job.pk}/").json()["status_page"]
    response = api.get(status_page)
    assert response.status_code == 200, response.content[-500:]


@pytest.mark.django_db
def test_the_admin_refuses_to_store_a_lone_surrogate(admin_client, collection):
    [memory] = store(collection, ["operator visible text"])
    response = admin_client.post(
        f"/admin/processing/memory/{memory.pk}/change/",
        {"tags": '["\\ud800"]', "metadata": "{}", "importance": "0.5"},
    )
    assert response.status_code == 200  # the form again, with its error
    assert b"lone surrogate" in response.content
    memory.refresh_from_db()
    assert memory.tags == []


# --- 7. deep nesting -----------------------------------------------------------------------


def nested(depth: int, kind: str) -> str:
    """A JSON value ``depth`` containers deep."""
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def echo_with(payload: str) -> bytes:
    """An echo job's create body with ``payload`` (JSON text) as its payload."""
    return ('{"type":"echo","params":{"payload":' + payload + "}}").encode()


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [65, 300, 10_000])
def test_deep_json_is_400(api, depth, kind):
    error = error_of(raw(api, echo_with(nested(depth, kind))), 400)
    assert error["code"] == "json_too_deep" and "64" in error["message"], error
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_json_at_the_depth_limit_is_accepted(api):
    # The body is one level, params another: 62 more make 64.
    response = raw(api, echo_with(nested(62, "array")))
    assert response.status_code == 202, response.content[:300]


@pytest.mark.django_db
def test_the_depth_limit_is_a_setting(api, settings):
    settings.JOBSITE_MAX_JSON_DEPTH = 3
    assert raw(api, b'{"type":"echo","params":{"payload":[1]}}').status_code == 202
    error = error_of(raw(api, b'{"type":"echo","params":{"payload":[[1]]}}'), 400)
    assert error["code"] == "json_too_deep" and "3" in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [300, 10_000])
def test_deep_json_in_multipart_params_is_400(api, depth):
    params = '{"payload":' + nested(depth, "array") + "}"
    response = api.post(URL, {"type": "echo", "params": params}, format="multipart")
    error = error_of(response, 400)
    assert error["code"] == "json_too_deep" and "params" in error["details"], error
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_deep_json_in_a_memory_patch_is_400(api, collection):
    [memory] = store(collection, ["some text"])
    body = '{"metadata":{"k":' + nested(10_000, "object") + "}}"
    response = api.generic(
        "PATCH", f"/api/v1/memories/{memory.pk}/", body, content_type="application/json"
    )
    assert error_of(response, 400)["code"] == "json_too_deep"


# --- 8. chunked bodies under WSGI ----------------------------------------------------------


@pytest.mark.django_db
def test_a_chunked_body_without_a_length_is_411_under_wsgi(api):
    """What gunicorn hands Django for a chunked request: no CONTENT_LENGTH, the header
    still there. Django would read it as empty (and a multipart one unbounded)."""
    response = raw(api, b'{"type":"echo"}', HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="")
    error = error_of(response, 411)
    assert error["code"] == "length_required" and "Content-Length" in error["message"]
    assert not Job.objects.exists()


# --- 9. crafted cursors, repeated parts ----------------------------------------------------


def cursor(**tokens: str) -> str:
    """A cursor as DRF encodes one: base64 of a query string (o: offset, r: reverse,
    p: position)."""
    return base64.b64encode(urlencode(tokens).encode()).decode()


CURSORS = {
    "p=zzz": cursor(p="zzz"),
    "p=NUL": cursor(p="\x00"),
    "p=huge number": cursor(p="9" * 30),
    "p=offset out of range": cursor(p="9999-12-31T23:59:59-23:59"),
    "o=x": cursor(o="x"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("value", CURSORS.values(), ids=CURSORS.keys())
@pytest.mark.parametrize("endpoint", ["jobs", "memories", "collections", "events"])
def test_a_crafted_cursor_is_400(api, collection, endpoint, value):
    url = {
        "jobs": URL,
        "memories": "/api/v1/memories/",
        "collections": "/api/v1/collections/",
    }.get(endpoint)
    if url is None:
        made = raw(api, b'{"type":"echo"}').json()
        url = f"{URL}{made['job_id']}/events/"
    error = error_of(api.get(url, {"cursor": value}), 400)
    assert "cursor" in error["details"], error


@pytest.mark.django_db
def test_cursors_still_page_through_everything(api, collection):
    ids = {raw(api, b'{"type":"echo"}').json()["job_id"] for _ in range(3)}
    for number in range(3):
        Collection.objects.create(owner=collection.owner, name=f"more {number}")
    for url, expected in (
        (f"{URL}?limit=1", ids),
        ("/api/v1/collections/?limit=1", set(Collection.objects.values_list("id", flat=True))),
        (f"{URL}{next(iter(ids))}/events/?limit=1", None),
    ):
        seen, pages = [], 0
        while url and pages < 20:
            page = api.get(url).json()
            seen += [item.get("job_id") or item["id"] for item in page["results"]]
            url, pages = page["next"], pages + 1
        if expected is not None:
            assert {str(value) for value in seen} == {str(value) for value in expected}
        else:
            assert seen and len(seen) == len(set(seen))


@pytest.mark.django_db
def test_two_file_parts_are_400(api, collection):
    files = [SimpleUploadedFile("a.txt", b"first file"), SimpleUploadedFile("b.txt", b"second")]
    body = {"type": "document_processing", "collection_id": str(collection.pk), "file": files}
    error = error_of(api.post(URL, body, format="multipart"), 400)
    assert error["code"] == "duplicate_field" and "file" in error["details"], error
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_repeated_form_field_is_400(api):
    error = error_of(api.post(URL, {"type": ["echo", "echo"]}, format="multipart"), 400)
    assert error["code"] == "duplicate_field" and "type" in error["details"], error


@pytest.mark.django_db
def test_file_parts_share_one_size_limit(api, settings, collection):
    settings.JOBSITE_MAX_UPLOAD_BYTES = 1000
    body = {
        "type": "document_processing",
        "collection_id": str(collection.pk),
        "file": SimpleUploadedFile("a.txt", b"x" * 600),
        "other": SimpleUploadedFile("b.txt", b"y" * 600),
    }
    assert error_of(api.post(URL, body, format="multipart"), 413)["code"] == "payload_too_large"


# --- 9. XML parts too large to parse -------------------------------------------------------

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def big_part_docx(path: Path, part_bytes: int) -> Path:
    """A DOCX whose ``word/document.xml`` is at least ``part_bytes`` of ordinary
    paragraphs, made in a fraction of a second: one megabyte of paragraphs is compressed
    once and its deflate block repeated (after a full flush the compressor starts afresh).
    It compresses about 10:1, well inside the archive's bomb ratio, so only the part's own
    size can be what refuses it."""
    head = f'<?xml version="1.0"?><w:document xmlns:w="{W_NS}"><w:body>'.encode()
    tail = b"</w:body></w:document>"
    paragraphs, number = [], 0
    while sum(map(len, paragraphs)) < MB:
        number += 1
        paragraphs.append(
            f"<w:p><w:r><w:t>Paragraph {number} of the long report, with words "
            f"{number * 7919 % 10007} and {number * 104729 % 99991}.</w:t></w:r></w:p>".encode()
        )
    chunk = b"".join(paragraphs)
    count = -(-part_bytes // len(chunk))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    repeated = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    data = start + repeated * count + deflate.compress(tail) + deflate.flush()
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + count * len(chunk) + len(tail)
    members = [(name, *documents._deflated(body)) for name, body in documents._MINIMAL_DOCX.items()]
    members.append(("word/document.xml", data, crc, size))
    path.write_bytes(documents._zip(members))
    return path


def test_the_big_part_generator_makes_a_valid_docx(tmp_path):
    path = big_part_docx(tmp_path / "big.docx", 3 * MB)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        info = archive.getinfo("word/document.xml")
    assert info.file_size >= 3 * MB and path.stat().st_size < info.file_size / 5
    units = list(open_document(path, Limits()).units)
    assert "Paragraph 2 of the long report" in units[0].text()


def test_a_docx_part_over_the_limit_is_refused_naming_the_part_and_the_limit(tmp_path):
    path = big_part_docx(tmp_path / "big.docx", 2 * MB)
    with pytest.raises(DocumentError) as caught:
        open_document(path, Limits(max_xml_part_bytes=1 * MB))
    assert caught.value.code == "xml_part_too_large"
    assert "word/document.xml" in caught.value.message, caught.value.message
    assert "1 MB" in caught.value.message, caught.value.message


def test_a_huge_docx_part_fails_clearly_within_the_job_memory_limit(tmp_path):
    """The issue's 190 MB DOCX: parsed whole, its tree outgrew the job's memory limit and
    lxml said only 'unknown error'. With the limits a document job runs with (inside the
    same memory limit), it fails at once, by name."""
    limits = pipeline.limits(pipeline.DocumentParams(collection_id=uuid.uuid4()))
    assert limits.max_xml_part_bytes < 200 * MB
    path = big_part_docx(tmp_path / "huge.docx", limits.max_xml_part_bytes + MB)
    started = time.monotonic()
    memory = runtime.memory_limit(django_settings.JOBSITE_DOC_MEMORY_MB)
    with pytest.raises(DocumentError) as caught, memory:
        open_document(path, limits)
    assert caught.value.code == "xml_part_too_large", caught.value.message
    assert "word/document.xml" in caught.value.message
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("builder", ["pptx", "odt", "epub"])
def test_other_zip_formats_refuse_an_xml_part_over_the_limit(tmp_path, builder):
    sample = {
        "pptx": lambda: documents.pptx_deck(tmp_path).path,
        "odt": lambda: documents.odt_notes(tmp_path).path,
        "epub": lambda: documents.epub_book(tmp_path).path,
    }[builder]()
    with zipfile.ZipFile(sample) as archive:
        largest = max(archive.infolist(), key=lambda info: info.file_size)
    with pytest.raises(DocumentError) as caught:
        open_document(sample, Limits(max_xml_part_bytes=largest.file_size - 1))
    assert caught.value.code == "xml_part_too_large"
    assert repr(largest.filename) in caught.value.message, caught.value.message


def test_xlsx_sheets_are_streamed_so_a_big_sheet_is_no_big_part(tmp_path):
    book = Workbook()
    for row in range(4000):
        book.active.append([f"row {row}", row, f"words {row * 31}"])
    path = tmp_path / "big.xlsx"
    book.save(path)
    with zipfile.ZipFile(path) as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    sheet = sizes.pop("xl/worksheets/sheet1.xml")
    limit = max(sizes.values()) + 1
    assert sheet > limit
    units = list(open_document(path, Limits(max_xml_part_bytes=limit)).units)
    assert "row 3999" in units[0].text()


def test_a_text_node_past_the_xml_parser_limit_says_so(tmp_path):
    """libxml2 refuses a text node over 10 MB ("try XML_PARSE_HUGE"): that is a limit of
    ours, not a malformed file."""
    block = "".join(chr(97 + (i * 7919) % 26) for i in range(16 * 1024))
    path = documents.build_odt(tmp_path / "long.odt", f"<text:p>{block * 700}</text:p>")
    with pytest.raises(DocumentError) as caught:
        open_document(path, Limits())
    assert caught.value.code == "xml_too_large", caught.value.message
    assert "not well-formed" not in caught.value.message


# --- the real servers ----------------------------------------------------------------------


def headers_of(api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.api_key}"}


@pytest.mark.worker
def test_on_the_real_server_bad_text_and_depth_are_400_and_nothing_is_stored(web, api):
    for body, code in (
        (rb'{"type":"echo","params":{"payload":"\ud800"}}', "invalid_text"),
        (echo_with(nested(10_000, "array")), "json_too_deep"),
    ):
        response = httpx.post(
            f"{web.url}{URL}",
            content=body,
            headers={**headers_of(api), "Content-Type": "application/json"},
        )
        error = error_of(response, 400)
        assert error["code"] == code
    assert not Job.objects.exists()
    response = httpx.get(
        f"{web.url}{URL}", params={"cursor": cursor(p="zzz")}, headers=headers_of(api)
    )
    assert error_of(response, 400)["details"]["cursor"]


@pytest.mark.worker
def test_on_the_real_server_poisoned_rows_render_everywhere(web, api, poisoned):
    job, _memory = poisoned
    auth = headers_of(api)
    for path in (URL, f"{URL}{job.pk}/", f"/api/v1/jobs/status/{job.pk}", "/api/v1/memories/"):
        response = httpx.get(f"{web.url}{path}", headers=auth)
        assert response.status_code == 200, (path, response.text[:300])
        json.loads(response.content)
    poll = httpx.get(f"{web.url}{URL}{job.pk}/poll/", params={"timeout": 1}, headers=auth)
    assert poll.status_code == 200 and poll.json()["result"] == {BAD: BAD}
    with httpx.stream("GET", f"{web.url}{URL}{job.pk}/stream/", headers=auth, timeout=10) as sse:
        text = b"".join(sse.iter_bytes()).decode()
    data = [line[5:] for line in text.splitlines() if line.startswith("data:")]
    assert json.loads(data[0])["status"] == "completed"
    status_page = httpx.get(f"{web.url}{URL}{job.pk}/", headers=auth).json()["status_page"]
    assert httpx.get(f"{web.url}{status_page}").status_code == 200


def chunked_request(port: int, key: str, content_type: str, body: bytes) -> tuple[int, bytes]:
    """Send exact bytes: a body in two chunks and no Content-Length."""
    half = len(body) // 2
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]) if part
    )
    request = (
        (
            f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        + chunks
        + b"0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        response = b""
        while data := sock.recv(65536):
            response += data
    head, _, content = response.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        content = dechunk(content)
    return int(head.split()[1]), content


def dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size, _, data = data.partition(b"\r\n")
        length = int(size.split(b";")[0], 16)
        if not length:
            return out
        out, data = out + data[:length], data[length + 2 :]


@pytest.mark.worker
def test_on_gunicorn_a_chunked_body_is_411_not_silently_empty(live, gunicorn, api):
    status, content = chunked_request(
        gunicorn.port, api.api_key, "application/json", b'{"type":"echo"}'
    )
    assert status == 411, content
    assert json.loads(content)["error"]["code"] == "length_required"
    boundary = "b0undary"
    upload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\necho\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    status, content = chunked_request(
        gunicorn.port, api.api_key, f"multipart/form-data; boundary={boundary}", upload
    )
    assert status == 411, content
    assert not Job.objects.exists()
