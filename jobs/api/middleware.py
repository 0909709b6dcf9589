"""Refuse a request by its headers alone, before anything reads its body."""

from __future__ import annotations

import codecs
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from jobs.api.errors import error_response

# Charsets a request may name: UTF-8 (the only one JSON has, RFC 8259), its subset ASCII,
# and Latin-1. Django decodes the query string and form fields, and DRF a JSON body, with
# whatever charset the client names, and some turn plain bytes into text nothing can
# store: UTF-7 decodes "+2AA-" to a lone surrogate.
ALLOWED_CHARSETS = frozenset({"utf-8", "ascii", "iso8859-1"})


def _charset_refused(request: HttpRequest) -> str | None:
    charset = request.content_params.get("charset")
    if not charset:
        return None
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        name = None
    return None if name in ALLOWED_CHARSETS else charset


def body_limit(content_type: str) -> int:
    """The largest request body: an upload's form (the file, and the JSON fields beside
    it), or a JSON body. The ASGI server reads bodies up to this too (jobsite/intake.py)."""
    if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
        return settings.JOBSITE_MAX_UPLOAD_BYTES + settings.JOBSITE_MAX_JSON_BYTES
    return settings.JOBSITE_MAX_JSON_BYTES


class BodySizeLimitMiddleware:
    """A 413 from the Content-Length alone; bodies without one are capped while read
    (``DATA_UPLOAD_MAX_MEMORY_SIZE`` and the upload handler). A chunked body without a
    length is a 411, and a charset other than UTF-8's a 415."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or ""
        if not declared and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # Under WSGI (gunicorn) Django reads a body only as far as its Content-Length:
            # a chunked one would be read as empty ("type: This field is required") and a
            # chunked upload would skip the size check above. The ASGI server de-chunks
            # bodies before Django sees them (jobsite/intake.py), so this is WSGI only.
            return error_response(
                411,
                "length_required",
                "A request body needs a Content-Length: this server (WSGI) cannot read a "
                "chunked body (Transfer-Encoding: chunked). Send the length, or use the "
                "ASGI server (uvicorn jobsite.asgi:application), which accepts both.",
            )
        try:
            length = int(declared or "0")
        except ValueError:
            return error_response(400, "bad_content_length", "Content-Length is not a number")
        if charset := _charset_refused(request):
            return error_response(
                415,
                "unsupported_charset",
                f"Charset {charset!r} is not accepted: send UTF-8",
                {"Content-Type": ["charset must be utf-8"]},
            )
        limit = body_limit(request.content_type)
        if length > limit:
            return error_response(
                413, "payload_too_large", f"Request body is larger than {limit} bytes"
            )
        return self.get_response(request)
