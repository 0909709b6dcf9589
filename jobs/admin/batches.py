"""The batches admin: a batch's counts and progress, its jobs (the first ones on its page,
all of them in the job list filtered by it), its ``batch.completed`` delivery, and a cancel
action that goes through the same service as the API."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jobs import selectors
from jobs.admin.base import TextSafeAdmin
from jobs.admin.lists import EstimatedCountPaginator
from jobs.admin.render import status_badge
from jobs.admin.steering import actor_of
from jobs.models import Batch, Job
from jobs.services.batches import batch_cancel

# Jobs listed on a batch's page; the rest are one click away in the filtered job list.
JOBS_SHOWN = 100
# The most batches one cancel action steers (each may hold a thousand jobs).
CANCEL_MAX = 20


@admin.register(Batch)
class BatchAdmin(TextSafeAdmin):
    list_display = ("id", "label", "owner", "total", "counts_display", "created_at", "ended")
    list_select_related = ("owner",)
    search_fields = ("=id", "=owner__username")
    search_help_text = "A batch id (the whole UUID) or an owner's username."
    ordering = ("-created_at",)
    sortable_by = ("created_at",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = (
        "id",
        "label",
        "owner",
        "total",
        "counts_display",
        "callback_url",
        "idempotency_key",
        "created_at",
        "completed_at",
        "jobs_display",
        "deliveries_display",
    )
    readonly_fields = fields
    actions = ("cancel_batches",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Batch | None = None) -> bool:
        return request.method in ("GET", "HEAD") or obj is None  # the page, the action

    @admin.display(description="ended", boolean=True)
    def ended(self, obj: Batch) -> bool:
        return obj.completed_at is not None

    @admin.display(description="jobs by status")
    def counts_display(self, obj: Batch) -> SafeString:
        counts, progress = selectors.batch_counts(batch=obj)
        url = reverse("admin:jobs_job_changelist")
        badges = format_html_join(
            " ",
            '<a href="{}?batch__exact={}&status__exact={}">{} {}</a>',
            (
                (url, obj.pk, status, status_badge(status), count)
                for status, count in counts.items()
                if count
            ),
        )
        return format_html("{} ({}%)", badges, f"{progress:.0f}")

    @admin.display(description="jobs")
    def jobs_display(self, obj: Batch) -> SafeString:
        jobs = Job.objects.filter(batch=obj).order_by("created_at", "pk")
        jobs = jobs.only("pk", "type", "status", "progress")[:JOBS_SHOWN]
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}%</td></tr>',
            (
                (
                    reverse("admin:jobs_job_change", args=[quote(job.pk)]),
                    job.pk,
                    job.type,
                    status_badge(job.status),
                    f"{job.progress:.0f}",
                )
                for job in jobs
            ),
        )
        everything = reverse("admin:jobs_job_changelist") + f"?batch__exact={obj.pk}"
        return format_html(
            '<table><tbody>{}</tbody></table><p><a href="{}">All {} jobs of this batch</a></p>',
            rows,
            everything,
            obj.total,
        )

    @admin.display(description="deliveries")
    def deliveries_display(self, obj: Batch) -> SafeString:
        items = format_html_join(
            "",
            '<li><a href="{}">{}</a>: {} after {} attempt(s)</li>',
            (
                (
                    reverse("admin:jobs_delivery_change", args=[quote(delivery.pk)]),
                    delivery.message_id,
                    delivery.status,
                    delivery.attempts,
                )
                for delivery in obj.deliveries.order_by("id")[:20]
            ),
        )
        return format_html("<ul>{}</ul>", items) if items else format_html("{}", "none")

    @admin.action(description="Cancel what has not ended in the selected batches")
    def cancel_batches(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        cancelled = stopping = 0
        for batch in queryset[:CANCEL_MAX]:
            counts = batch_cancel(batch, actor=actor_of(request))
            cancelled += counts["cancelled"]
            stopping += counts["stopping"]
        self.message_user(request, f"{cancelled} job(s) cancelled, {stopping} stopping.")
