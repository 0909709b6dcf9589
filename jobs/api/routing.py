"""Every API path answers with and without its trailing slash, for every method.

Clients spell paths both ways (Compileo's ``/jobs/status/{id}``, KnowledgeSDK's and
DocuRift's ``/jobs/{id}``, ours ``/jobs/{id}/``), and a redirect is no answer to a POST:
``APPEND_SLASH`` is off, and each route is registered under both spellings instead. The
OpenAPI schema shows each operation once, under the spelling listed first.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

# Where the API's routes start (``jobsite.urls`` mounts them here; the live app matches
# its routes under it before Django sees the request).
API_PREFIX = "api/v1/"


def both(
    route: str, view: Any, name: str | None = None, kwargs: dict[str, Any] | None = None
) -> list[URLPattern]:
    """``route`` as written (named, in the schema) and with its trailing slash toggled."""
    other = route[:-1] if route.endswith("/") else route + "/"
    return [path(route, view, kwargs, name=name), path(other, view, kwargs)]


def one_spelling(endpoints: list[tuple[Any, ...]], **_: Any) -> list[tuple[Any, ...]]:
    """drf-spectacular preprocessing hook: an operation once, under its first spelling."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for endpoint in endpoints:
        path_, _, method, _ = endpoint
        key = (path_.rstrip("/"), method)
        if key not in seen:
            seen.add(key)
            kept.append(endpoint)
    return kept
