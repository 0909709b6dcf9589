"""Refuse oversized bodies by their declared length, before anything reads them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from jobs.api.errors import error_response


class BodySizeLimitMiddleware:
    """A 413 from the Content-Length alone; bodies without one are capped while read
    (``DATA_UPLOAD_MAX_MEMORY_SIZE`` and the upload handler)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return error_response(400, "bad_content_length", "Content-Length is not a number")
        multipart = request.content_type == "multipart/form-data"
        limit = (
            settings.JOBSITE_MAX_UPLOAD_BYTES + settings.JOBSITE_MAX_JSON_BYTES
            if multipart
            else settings.JOBSITE_MAX_JSON_BYTES
        )
        if length > limit:
            return error_response(
                413, "payload_too_large", f"Request body is larger than {limit} bytes"
            )
        return self.get_response(request)
