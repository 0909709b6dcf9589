"""The public clients (``tests/contract/clients.py``) pointed at the session's live
server (uvicorn, real workers) with the test user's API key."""

from __future__ import annotations

import pytest
import requests

from tests.contract import clients


@pytest.fixture
def client_of(web, api, monkeypatch):
    """Point the clients at the live server with ``api``'s key; returns a function that
    creates a job over HTTP (the way those clients' users do) and gives its id."""
    monkeypatch.setattr(clients, "BASE", web.url)
    monkeypatch.setattr(clients, "HEADERS", {"Authorization": f"Bearer {api.api_key}"})

    def create(job_type: str = "echo", **body) -> str:
        response = requests.post(
            f"{web.url}/api/v1/jobs/",
            json={"type": job_type, **body},
            headers=clients.HEADERS,
            timeout=10,
        )
        assert response.status_code == 202, response.text
        return response.json()["job_id"]

    return create
