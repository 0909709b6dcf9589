"""The JobEvent admin: the append-only event log, read-only.

Events are written by the services, with what they record; an operator reads them here,
by job or by actor, and cannot add, edit or delete one (a job's delete still removes
its events).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs.admin.base import TextSafeAdmin
from jobs.admin.lists import EstimatedCountPaginator, job_id_from
from jobs.admin.render import precise, pretty_json
from jobs.models import JobEvent


@admin.register(JobEvent)
class JobEventAdmin(TextSafeAdmin):
    """The append-only event log, read-only. Delete stays permitted only so that deleting a
    job (which cascades to its events) is not refused; the UI offers no event delete."""

    list_display = ("at_display", "job_link", "kind", "transition", "actor", "attempt", "reason")
    list_display_links = ("at_display",)
    list_filter = ("kind", "at")
    search_fields = ("actor__exact",)
    search_help_text = "A job id (the whole UUID) or an exact actor, e.g. user:alice."
    ordering = ("-id",)
    sortable_by = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    fields = (
        "job",
        "at",
        "kind",
        "from_status",
        "to_status",
        "actor",
        "reason",
        "attempt",
        "data_display",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobEvent | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "show_delete": False}
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[JobEvent], search_term: str
    ) -> tuple[QuerySet[JobEvent], bool]:
        if (job_id := job_id_from(search_term)) is not None:
            return queryset.filter(job_id=job_id), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="at")
    def at_display(self, obj: JobEvent) -> str:
        return precise(obj.at)

    @admin.display(description="job")
    def job_link(self, obj: JobEvent) -> SafeString:
        """By id, without joining the job table for every row."""
        url = reverse("admin:jobs_job_change", args=[quote(obj.job_id)])
        return format_html('<a href="{}">{}</a>', url, obj.job_id)

    @admin.display(description="from → to")
    def transition(self, obj: JobEvent) -> str:
        if not (obj.from_status or obj.to_status):
            return self.get_empty_value_display()
        return f"{obj.from_status or '·'} → {obj.to_status or '·'}"

    @admin.display(description="data")
    def data_display(self, obj: JobEvent) -> SafeString | str:
        return self.get_empty_value_display() if obj.data is None else pretty_json(obj.data)
