"""The REST API through the ASGI server as production runs it (uvicorn, with the REST paths
as WSGI on a thread pool): uploads stream through, oversized and malformed bodies get
JSON 4xx, and concurrent requests are served side by side."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests import documents

pytestmark = [pytest.mark.worker]


def headers(api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.api_key}"}


def test_a_multipart_upload_streams_through_and_creates_the_job(web, api, tmp_path):
    collection = httpx.post(
        f"{web.url}/api/v1/collections/", json={"name": "asgi"}, headers=headers(api)
    ).json()
    # A body of megabytes, which a documents worker (if one runs) refuses at once for its
    # page count: the upload is what is tested here.
    pdf = documents.pdf_blank_pages(tmp_path, pages=20_000).path
    assert pdf.stat().st_size > 2 * 1024 * 1024
    with pdf.open("rb") as body:
        response = httpx.post(
            f"{web.url}/api/v1/jobs/",
            data={"type": "document_processing", "collection_id": collection["id"]},
            files={"file": (pdf.name, body, "application/pdf")},
            headers=headers(api),
            timeout=30,
        )
    assert response.status_code == 202, response.text
    assert response.json()["type"] == "document_processing"


def test_an_oversized_body_is_413_json(web, api):
    response = httpx.post(
        f"{web.url}/api/v1/jobs/",
        content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        headers={**headers(api), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_malformed_json_is_400_json(web, api):
    response = httpx.post(
        f"{web.url}/api/v1/jobs/",
        content=b'{"type": "echo", ',
        headers={**headers(api), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "error" in response.json()


def test_requests_are_served_side_by_side(web, api):
    """Eight concurrent GETs and POSTs all answer (threads, not one queue)."""

    def one(i: int) -> int:
        if i % 2:
            return httpx.get(f"{web.url}/api/v1/jobs/", headers=headers(api)).status_code
        return httpx.post(
            f"{web.url}/api/v1/jobs/",
            json={"type": "echo", "params": {"payload": i}},
            headers=headers(api),
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(40)))
    assert sorted(set(codes)) == [200, 202]
