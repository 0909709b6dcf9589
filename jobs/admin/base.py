"""The base of every admin in the project: pages that render whatever a row holds.

Rows can hold text that UTF-8 cannot encode (a lone surrogate in JSON stored before the
API refused them). An operator opening such a row must see it, not a 500, so every
ModelAdmin here, and ``processing``'s, derives from ``TextSafeAdmin``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


class EscapingTemplateResponse(TemplateResponse):
    """A page that shows a lone surrogate (in a JSON value stored before the API refused
    them) sends it as its ``\\udXXX`` escape, instead of failing in UTF-8's encoder."""

    def make_bytes(self, value: Any) -> bytes:
        if isinstance(value, str):
            return value.encode(self.charset, "backslashreplace")
        return super().make_bytes(value)


class TextSafeAdmin(admin.ModelAdmin):
    """Pages that never fail on what a row holds. The admin makes its TemplateResponses
    itself; the class of each one is swapped before it is rendered (the only hook that
    covers every field, widget and title the admin draws)."""

    @staticmethod
    def _escaping(response: HttpResponse) -> HttpResponse:
        if type(response) is TemplateResponse and not response.is_rendered:
            response.__class__ = EscapingTemplateResponse
        return response

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return self._escaping(super().changelist_view(request, extra_context))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        return self._escaping(super().changeform_view(request, object_id, form_url, extra_context))

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        return self._escaping(super().delete_view(request, object_id, extra_context))

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        return self._escaping(super().history_view(request, object_id, extra_context))
