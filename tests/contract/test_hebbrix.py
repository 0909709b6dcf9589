"""Hebbrix's ``wait_for_job``, as its guide writes it, over a ``client.jobs.get`` that is
one GET, against a live Jobsite processing a real document."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.contract import clients

pytestmark = [pytest.mark.worker]

TEXT = "\n\n".join(
    f"Paragraph {n}: the heron waits at the edge of the reeds for the tide to turn." * 3
    for n in range(1, 30)
)


def upload(path: Path, collection_id: str) -> str:
    with path.open("rb") as handle:
        response = requests.post(
            f"{clients.BASE}/api/v1/jobs/",
            data={"type": "document_processing", "collection_id": collection_id},
            files={"file": (path.name, handle)},
            headers=clients.HEADERS,
            timeout=10,
        )
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


@pytest.fixture
def collection_id(client_of, documents_worker) -> str:
    response = requests.post(
        f"{clients.BASE}/api/v1/collections/",
        json={"name": "hebbrix"},
        headers=clients.HEADERS,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_wait_for_job_returns_the_processed_documents_result(collection_id, tmp_path, capsys):
    path = tmp_path / "herons.txt"
    path.write_text(TEXT, encoding="utf-8")
    result = clients.wait_for_job(upload(path, collection_id), max_wait=60)
    assert "Job completed successfully!" in capsys.readouterr().out
    assert result is not None and result["memories_created"] >= 1
    print(f"Processed {result['memories_created']} memories!")  # the guide's last line


def test_wait_for_job_reports_a_failed_jobs_error_message(collection_id, tmp_path, capsys):
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)  # a PDF header, then nothing
    assert clients.wait_for_job(upload(path, collection_id), max_wait=60) is None
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("Job failed: ")]
    assert failed and len(failed[0]) > len("Job failed: ") + 10, out
    assert "None" not in failed[0]
