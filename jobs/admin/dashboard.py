"""The operators' dashboard: a page of charts (``templates/admin/jobs/dashboard.html``)
that refreshes itself from a JSON view of ``jobs.dashboard.figures``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from jobs import dashboard
from jobs.api.errors import error_response

# How often the page asks for new figures (seconds).
REFRESH_SECONDS = 5


def _window(request: HttpRequest) -> int | None:
    raw = request.GET.get("window", str(dashboard.DEFAULT_WINDOW))
    try:
        window = int(raw)
    except ValueError:
        return None
    return window if window in dashboard.WINDOWS else None


def _bad_window() -> JsonResponse:
    allowed = ", ".join(str(w) for w in dashboard.WINDOWS)
    return error_response(400, "invalid_input", f"window is one of {allowed} (minutes)")


def urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The page and its data, behind the admin's login and the job list's view permission."""
    site = model_admin.admin_site

    def checked(request: HttpRequest) -> int | JsonResponse:
        """The window asked for, or the 403 or 400 that answers instead."""
        if not model_admin.has_view_permission(request):
            return error_response(403, "permission_denied", "Permission denied")
        window = _window(request)
        return _bad_window() if window is None else window

    def page(request: HttpRequest) -> HttpResponse:
        window = checked(request)
        if isinstance(window, JsonResponse):
            return window
        context: dict[str, Any] = {
            **site.each_context(request),
            "title": "Jobs dashboard",
            "opts": model_admin.opts,
            "figures": dashboard.figures(window),
            "refresh_seconds": REFRESH_SECONDS,
        }
        return TemplateResponse(request, "admin/jobs/dashboard.html", context)

    def data(request: HttpRequest) -> JsonResponse:
        window = checked(request)
        if isinstance(window, JsonResponse):
            return window
        try:
            response = JsonResponse(dashboard.figures(window))
        except (OperationalError, InterfaceError):  # the page says so and asks again
            response = error_response(503, "database_unavailable", "The database is unavailable")
            response["Retry-After"] = str(REFRESH_SECONDS)
        response["Cache-Control"] = "no-store"
        return response

    return [
        path("dashboard/", site.admin_view(page), name="jobs_job_dashboard"),
        path("dashboard/data/", site.admin_view(data), name="jobs_job_dashboard_data"),
    ]
