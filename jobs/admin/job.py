"""The Job admin: view jobs, steer them through services, delete them.

Nothing here writes ``Job.status``: the actions and the per-job buttons call
``jobs.services.job_cancel`` / ``job_restart`` (through ``jobs.admin.steering``) and report
what happened with ``message_user``. Every Job field is read-only, and the Job form never
saves: a full ``save()`` of a row read seconds ago would overwrite what a worker wrote
meanwhile.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from jobs.admin import dashboard
from jobs.admin.base import TextSafeAdmin
from jobs.admin.lists import EstimatedCountPaginator, JobChangeList, JobTypeFilter, job_id_from
from jobs.admin.render import preformatted, pretty_json, progress_bar, status_badge
from jobs.admin.steering import Step, actor_of, cancel_step, restart_step, steer
from jobs.admin.timeline import timeline_html
from jobs.errors import Conflict
from jobs.models import Job
from jobs.transitions import can_cancel, can_restart

# The most jobs one bulk action steers; more would outlast the request.
ACTION_MAX = 1000


@admin.register(Job)
class JobAdmin(TextSafeAdmin):
    """Jobs are created through the API and changed only by services: view, steer, delete."""

    list_display = (
        "id",
        "type",
        "status_display",
        "progress_display",
        "owner",
        "queue",
        "priority",
        "attempts",
        "error_code",
        "created_at",
    )
    list_display_links = ("id",)
    list_filter = ("status", JobTypeFilter, "created_at")
    search_fields = ("=owner__username",)
    search_help_text = "A job id (the whole UUID) or an owner's username."
    list_select_related = ("owner",)
    # Only the created_at order is backed by indexes; any other sort is a full-table sort.
    sortable_by = ("created_at",)
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    actions = ("cancel_jobs", "restart_jobs")
    readonly_fields = (
        *(field.name for field in Job._meta.concrete_fields),
        "status_display",
        "progress_display",
        "duration_display",
        "params_display",
        "result_display",
        "traceback_display",
        "timeline",
    )
    # Model fields that the fieldsets show through a *_display method instead.
    shown_by_display = frozenset({"status", "progress", "params", "result", "error_traceback"})
    fieldsets = (
        (
            "Overview",
            {
                "fields": (
                    "id",
                    "type",
                    "status_display",
                    "progress_display",
                    "current_step",
                    "owner",
                    "queue",
                    "priority",
                )
            },
        ),
        (
            "Timing",
            {
                "fields": (
                    "created_at",
                    "started_at",
                    "completed_at",
                    "duration_display",
                    "updated_at",
                    "next_retry_at",
                    "heartbeat_at",
                    "run_at",
                    "dispatched_at",
                    "cancel_requested_at",
                )
            },
        ),
        (
            "Attempts",
            {
                "fields": (
                    "attempts",
                    "max_retries",
                    "retry_base",
                    "time_limit",
                    "celery_task_id",
                    "worker",
                )
            },
        ),
        (
            "Input",
            {
                "fields": (
                    "params_display",
                    "idempotency_key",
                    "request_fingerprint",
                    "callback_url",
                    "batch",
                    "input_file",
                )
            },
        ),
        ("Outcome", {"fields": ("result_display", "error_code", "error_message")}),
        ("Events", {"fields": ("timeline",)}),
        (
            "Operators",
            {
                "classes": ("collapse",),
                "description": "For operators only: never sent through the API.",
                "fields": ("traceback_display",),
            },
        ),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> Any:
        """The fieldsets above, plus any model field they do not place yet (a new column
        shows up read-only instead of silently missing)."""
        placed = {name for _, options in self.fieldsets for name in options["fields"]}
        placed |= self.shown_by_display
        rest = tuple(f.name for f in Job._meta.concrete_fields if f.name not in placed)
        return (*self.fieldsets, ("Other", {"fields": rest})) if rest else self.fieldsets

    # --- permissions: view and delete as usual; "steer" is the model's change permission

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are created through the API, where params are validated

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False  # the page is view-only: a form save would overwrite a worker's writes

    def has_steer_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        """Cancel and restart: granted by the ordinary ``jobs.change_job`` permission."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        """A UUID finds that job by primary key; anything else is an owner's username."""
        if (job_id := job_id_from(search_term)) is not None:
            return queryset.filter(pk=job_id), False
        return super().get_search_results(request, queryset, search_term)

    # --- columns and read-only fields

    @admin.display(description="status")
    def status_display(self, obj: Job) -> SafeString:
        return status_badge(obj.status)

    @admin.display(description="progress")
    def progress_display(self, obj: Job) -> SafeString:
        return progress_bar(obj)

    @admin.display(description="duration")
    def duration_display(self, obj: Job) -> str:
        seconds = obj.duration
        return self.get_empty_value_display() if seconds is None else f"{seconds:.3f} s"

    @admin.display(description="params")
    def params_display(self, obj: Job) -> SafeString:
        return pretty_json(obj.params)

    @admin.display(description="result")
    def result_display(self, obj: Job) -> SafeString | str:
        return self.get_empty_value_display() if obj.result is None else pretty_json(obj.result)

    @admin.display(description="error traceback")
    def traceback_display(self, obj: Job) -> SafeString | str:
        if not obj.error_traceback:
            return self.get_empty_value_display()
        return preformatted(obj.error_traceback)

    @admin.display(description="event timeline")
    def timeline(self, obj: Job) -> SafeString | str:
        """At, kind, from → to, actor, reason, attempt: see ``jobs.admin.timeline``."""
        return timeline_html(obj)

    # --- bulk actions

    def _steer_selected(self, request: HttpRequest, queryset: QuerySet[Job], step: Step) -> None:
        jobs = list(queryset[: ACTION_MAX + 1])
        if len(jobs) > ACTION_MAX:
            self.message_user(
                request,
                f"More than {ACTION_MAX} jobs selected: narrow the list with filters first.",
                messages.ERROR,
            )
            return
        summary, skipped = steer(jobs, step, actor=actor_of(request))
        self.message_user(request, summary, messages.WARNING if skipped else messages.SUCCESS)

    @admin.action(description="Cancel selected jobs", permissions=["steer"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._steer_selected(request, queryset, cancel_step)

    @admin.action(description="Restart selected jobs", permissions=["steer"])
    def restart_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._steer_selected(request, queryset, restart_step)

    # --- per-job buttons on the detail page

    def get_urls(self) -> list[URLPattern]:
        """The dashboard, and cancel and restart one job (POST only); before the admin's
        catch-all object URLs."""
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        own = [
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(require_POST(self.cancel_view)),
                name=f"{name}_cancel",
            ),
            path(
                "<path:object_id>/restart/",
                self.admin_site.admin_view(require_POST(self.restart_view)),
                name=f"{name}_restart",
            ),
        ]
        return dashboard.urls(self) + own + super().get_urls()

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._steer_one(request, object_id, cancel_step)

    def restart_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._steer_one(request, object_id, restart_step)

    def _steer_one(self, request: HttpRequest, object_id: str, step: Step) -> HttpResponse:
        if not self.has_steer_permission(request):
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404("No such job")
        try:
            self.message_user(request, f"Job {job.pk}: {step(job, actor_of(request))}.")
        except Conflict as exc:
            self.message_user(request, f"Job {job.pk}: {exc.message}.", messages.WARNING)
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[quote(job.pk)]
        )
        return HttpResponseRedirect(url)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Job | None = None,
    ) -> HttpResponse:
        """Offer only the buttons the transition rules allow (the service decides anyway)."""
        if obj is not None:
            context["live_page_url"] = reverse("job-page", args=[obj.pk])
            if settings.JOBSITE_FLOWER_URL and obj.celery_task_id:
                context["flower_task_url"] = (
                    f"{settings.JOBSITE_FLOWER_URL.rstrip('/')}/task/{obj.celery_task_id}"
                )
        if obj is not None and self.has_steer_permission(request):
            context["can_cancel_job"] = can_cancel(obj.status)
            context["can_restart_job"] = can_restart(obj.status)
        return super().render_change_form(request, context, add, change, form_url, obj)
