"""Every API error, one JSON shape: ``{"error": {"code", "message", "details"}}``.

Domain errors (``jobs.errors.JobsiteError``) carry their status; DRF's and Django's own
are mapped here, so no malformed request ever reaches a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response

from jobs.errors import JobsiteError

log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


def error_response(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation errors as ``{"field.sub": ["message"]}``."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix or "body"
            out.update(_flatten(value, name))
        return out
    if isinstance(detail, list) and detail and all(not isinstance(d, (dict, list)) for d in detail):
        return {prefix or "body": [str(d) for d in detail]}
    if isinstance(detail, list):
        out = {}
        for index, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return {prefix or "body": [str(detail)]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, JobsiteError):
        status, body = exc.status, error_body(exc.code, exc.message, exc.details)
    elif isinstance(exc, RequestDataTooBig):
        status, body = 413, error_body("payload_too_large", "Request body is too large")
    elif isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields.items()), ("body", ["invalid"]))
        message = f"{first[0]}: {first[1][0]}"
        status, body = 400, error_body("invalid_input", message, fields)
    elif isinstance(exc, exceptions.ParseError):
        status, body = 400, error_body("malformed_request", str(exc.detail))
    elif isinstance(exc, (Http404, exceptions.NotFound)):
        status, body = 404, error_body("not_found", "Not found")
    elif isinstance(exc, PermissionDenied):
        status, body = 403, error_body("permission_denied", "Permission denied")
    elif isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("Database unavailable in %s: %s", context.get("view"), exc)
        status = 503
        body = error_body("database_unavailable", "The database is unavailable; try again")
        headers["Retry-After"] = "5"
    elif isinstance(exc, SuspiciousOperation):
        status, body = 400, error_body("bad_request", str(exc) or "Bad request")
    elif isinstance(exc, exceptions.APIException):
        status = exc.status_code
        body = error_body(exc.default_code, str(exc.detail))
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        if auth := getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = auth
    else:
        log.exception("Unhandled error in %s", context.get("view"))
        status, body = 500, error_body("internal_error", "Internal server error")
    return Response(body, status=status, headers=headers)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None):
    if _is_api(request):
        return error_response(404, "not_found", "Not found")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest):
    if _is_api(request):
        return error_response(500, "internal_error", "Internal server error")
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None):
    if _is_api(request):
        return error_response(400, "bad_request", "Bad request")
    return defaults.bad_request(request, exception)
