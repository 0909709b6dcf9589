"""Hostile input at the API, generated from its own OpenAPI schema (Schemathesis): no
request may get a 5xx, and every documented response must match the schema.

Bounded in ``make test`` (``JOBSITE_FUZZ_EXAMPLES``, 15 per operation); ``make fuzz`` runs
hundreds. The app is called in-process (WSGI) with a real API key and database.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.helpers import make_client

EXAMPLES = int(os.environ.get("JOBSITE_FUZZ_EXAMPLES", "15"))

# Django's WSGI app as jobsite/wsgi.py builds it, without the web process's background
# publisher (this test process's creates publish as the other tests' do).
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def key(user) -> str:
    return make_client(user).api_key


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_responses_match_the_schema(case, key):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {key}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
