"""The webhook deliveries admin: what each job's callback was sent, what came back, and
"send it again" for an operator (the same message, with a fresh retry window)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs.admin.base import TextSafeAdmin
from jobs.admin.lists import EstimatedCountPaginator, job_id_from
from jobs.models import Delivery, DeliveryAttempt
from jobs.webhooks import deliveries

ATTEMPT_FIELDS = (
    "attempt",
    "at",
    "status_code",
    "duration_ms",
    "error",
    "response_excerpt",
    "next_attempt_at",
)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(TextSafeAdmin):
    """Read-only but for the redeliver action; search by the job's whole id."""

    list_display = (
        "id",
        "subject_link",
        "event_type",
        "url",
        "status",
        "attempts",
        "next_attempt_at",
    )
    list_filter = ("status", "event_type")
    search_fields = ("message_id__exact",)
    search_help_text = "A job or batch id (the whole UUID) or a webhook-id (msg_…)."
    ordering = ("-id",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = (
        "job",
        "batch",
        "message_id",
        "event_type",
        "url",
        "status",
        "attempts",
        "next_attempt_at",
        "give_up_at",
        "created_at",
        "finished_at",
        "body",
    )
    readonly_fields = fields
    inlines = (DeliveryAttemptInline,)
    actions = ("redeliver",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return request.method in ("GET", "HEAD") or obj is None  # the page, the action

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Delivery], search_term: str
    ) -> tuple[QuerySet[Delivery], bool]:
        if (job_id := job_id_from(search_term)) is not None:
            return queryset.filter(Q(job_id=job_id) | Q(batch_id=job_id)), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="job or batch")
    def subject_link(self, obj: Delivery) -> SafeString:
        if obj.job_id is None:
            url = reverse("admin:jobs_batch_change", args=[quote(obj.batch_id)])
            return format_html('<a href="{}">batch {}</a>', url, obj.batch_id)
        url = reverse("admin:jobs_job_change", args=[quote(obj.job_id)])
        return format_html('<a href="{}">{}</a>', url, obj.job_id)

    @admin.action(description="Deliver the selected messages again", permissions=["change"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        sent = sum(deliveries.redeliver(delivery) for delivery in queryset[:500])
        self.message_user(request, f"{sent} queued for delivery (one being sent is skipped).")
