"""The API's JSON renderer: a response that cannot be encoded is still sent."""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import renderers

log = logging.getLogger(__name__)


class _EscapingJSONRenderer(renderers.JSONRenderer):
    ensure_ascii = True


class JSONRenderer(renderers.JSONRenderer):
    """DRF's renderer (UTF-8, non-ASCII text as is). A response holding a lone surrogate
    (a JSON value stored before ``jobs.api.parsers`` refused them) would fail in its
    ``encode()``, a 500 on every read of the row; it is sent with non-ASCII characters
    escaped instead, as the live endpoints always send them. Escaped, not replaced: a
    client reads back what was stored, and can repair the row."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            view = (renderer_context or {}).get("view")
            log.warning("%s: a lone surrogate in the response, sent escaped", type(view).__name__)
            return _EscapingJSONRenderer().render(data, accepted_media_type, renderer_context)
