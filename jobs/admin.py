"""The operators' admin: look at jobs, their events and API keys; steer jobs through services.

Nothing here writes ``Job.status``: the actions and the per-job buttons call
``jobs.services.job_cancel`` / ``job_restart`` and report what happened with
``message_user``. Every Job field is read-only, and the Job form never saves: a full
``save()`` of a row read seconds ago would overwrite what a worker wrote meanwhile.
The lists are built to stay fast on millions of rows (no COUNT(*) of the whole table,
no SELECT DISTINCT for filters, sorting only on an indexed column).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import number_format
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from jobs import registry
from jobs.auth import KEY_MARK, actor_name
from jobs.errors import Conflict
from jobs.models import ApiKey, Job, JobEvent, JobStatus
from jobs.services import api_key_create, api_key_revoke, job_cancel, job_restart
from jobs.transitions import can_cancel, can_restart

# At or above this many rows (by PostgreSQL's estimate) an unfiltered list shows the estimate.
ESTIMATE_FROM = 100_000
# The most jobs one bulk action steers; more would outlast the request.
ACTION_MAX = 1000
# Events shown inline on a job's page; the rest are one link away.
TIMELINE_MAX = 200
# Pretty-printed JSON longer than this is cut on the page (results can be megabytes).
PRETTY_MAX = 100_000
# Columns the job list does not need; a traceback alone can be 20 kB per row.
LIST_DEFERRED = ("params", "result", "error_message", "error_traceback", "request_fingerprint")


# --- lists that stay fast ------------------------------------------------------------------


def estimated_row_count(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's planner estimate of the table's rows, or None on other databases."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table]
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered huge table from pg_class.reltuples instead of COUNT(*).

    A filtered list, a small table, another database (SQLite) or a never-analysed table
    (reltuples is -1) get the exact count.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.has_filters():
            estimate = estimated_row_count(queryset)
            if estimate is not None and estimate >= ESTIMATE_FROM:
                return estimate
        return super().count


class JobChangeList(ChangeList):
    """Leaves the heavy columns out of the list's query; the detail page loads them."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Job]:
        return super().get_queryset(request, exclude_parameters).defer(*LIST_DEFERRED)


class JobTypeFilter(admin.SimpleListFilter):
    """Job types from the registry, not a SELECT DISTINCT over every row."""

    title = "type"
    parameter_name = "type"
    OTHER = "__other__"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = sorted(registry.public_names())
        value = self.value()
        if value and value != self.OTHER and value not in names:
            names.append(value)  # a Django task type reached through a link
        return [(name, name) for name in names] + [(self.OTHER, "other (Django tasks)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        value = self.value()
        if value == self.OTHER:
            return queryset.exclude(type__in=registry.public_names())
        if value:
            return queryset.filter(type=value)
        return queryset


# --- small renderers ---------------------------------------------------------------------


def status_badge(status: str) -> SafeString:
    """A status as a coloured pill; the colours live in templates/admin/jobs/styles.html."""
    label = JobStatus(status).label if status in JobStatus.values else status
    return format_html('<span class="jobs-badge jobs-badge--{}">{}</span>', status, label)


def pretty_json(value: Any) -> SafeString:
    """Indented JSON in a <pre>, escaped: params and results are user input."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > PRETTY_MAX:
        cut = len(text) - PRETTY_MAX
        text = f"{text[:PRETTY_MAX]}\n… ({number_format(cut, force_grouping=True)} more characters)"
    return format_html('<pre class="jobs-pre">{}</pre>', text)


def precise(moment: datetime) -> str:
    """Events are often milliseconds apart; the admin's default format shows minutes."""
    return localtime(moment).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def job_id_from(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


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


# --- steering: one path for the bulk actions and the per-job buttons ----------------------


def _cancel(job: Job, actor: str) -> str:
    return "cancelled" if job_cancel(job, actor=actor) == JobStatus.CANCELLED else "stopping"


def _restart(job: Job, actor: str) -> str:
    job_restart(job, actor=actor)
    return "restarted"


def steer(jobs: Iterable[Job], step: Callable[[Job, str], str], *, actor: str) -> tuple[str, bool]:
    """Run one service per job; a Conflict skips that job and is reported, never raised.

    Returns a summary such as "3 cancelled, 1 stopping, 2 skipped: Job is already completed
    (2)" and whether any job was skipped.
    """
    done: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for job in jobs:
        try:
            done[step(job, actor)] += 1
        except Conflict as exc:
            skipped[exc.message] += 1
    parts = [f"{count} {outcome}" for outcome, count in sorted(done.items())]
    if skipped:
        reasons = "; ".join(f"{reason} ({count})" for reason, count in skipped.items())
        parts.append(f"{skipped.total()} skipped: {reasons}")
    return ", ".join(parts) or "nothing to do", bool(skipped)


def actor_of(request: HttpRequest) -> str:
    """Who is acting in the admin, as the event log records it."""
    return actor_name(request.user)


# --- Job ---------------------------------------------------------------------------------


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
        percent = max(0.0, min(100.0, obj.progress))
        return format_html(
            '<progress class="jobs-progress jobs-progress--{}" max="100" value="{}" title="{}">'
            "</progress> {}%",
            obj.status,
            f"{percent:.1f}",
            obj.current_step,
            f"{percent:.0f}",
        )

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
        return format_html('<pre class="jobs-pre">{}</pre>', obj.error_traceback)

    @admin.display(description="event timeline")
    def timeline(self, obj: Job) -> SafeString | str:
        """The last events, oldest first: at, kind, from → to, actor, reason, attempt."""
        events = list(obj.events.order_by("-id")[: TIMELINE_MAX + 1])
        more = len(events) > TIMELINE_MAX
        events = events[:TIMELINE_MAX][::-1]
        if not events:
            return "No events."
        rows = format_html_join(
            "\n",
            "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    precise(event.at),
                    event.get_kind_display(),
                    status_badge(event.from_status) if event.from_status else "·",
                    status_badge(event.to_status) if event.to_status else "·",
                    event.actor,
                    event.reason,
                    event.attempt,
                )
                for event in events
            ),
        )
        link = format_html(
            '<a href="{}?{}">{}</a>',
            reverse("admin:jobs_jobevent_changelist"),
            urlencode({"job__id__exact": str(obj.pk)}),
            f"Only the last {TIMELINE_MAX} are shown: all events" if more else "All events",
        )
        return format_html(
            '<table class="jobs-timeline"><thead><tr><th>at</th><th>kind</th><th>from → to</th>'
            "<th>actor</th><th>reason</th><th>attempt</th></tr></thead><tbody>{}</tbody></table>"
            "<p>{}</p>",
            rows,
            link,
        )

    # --- bulk actions

    def _steer_selected(
        self, request: HttpRequest, queryset: QuerySet[Job], step: Callable[[Job, str], str]
    ) -> None:
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
        self._steer_selected(request, queryset, _cancel)

    @admin.action(description="Restart selected jobs", permissions=["steer"])
    def restart_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._steer_selected(request, queryset, _restart)

    # --- per-job buttons on the detail page

    def get_urls(self) -> list[URLPattern]:
        """Cancel and restart one job (POST only); before the admin's catch-all object URLs."""
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
        return own + super().get_urls()

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._steer_one(request, object_id, _cancel)

    def restart_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._steer_one(request, object_id, _restart)

    def _steer_one(
        self, request: HttpRequest, object_id: str, step: Callable[[Job, str], str]
    ) -> HttpResponse:
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


# --- JobEvent ----------------------------------------------------------------------------


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


# --- ApiKey ------------------------------------------------------------------------------


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Revoked"), ("no", "Not revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(TextSafeAdmin):
    """Keys are made by ``api_key_create`` (the plain key is shown once, in a message) and
    revoked by ``api_key_revoke``; the hash is never shown, prefix and hash never edited."""

    list_display = (
        "key_display",
        "user",
        "name",
        "created_at",
        "last_used_at",
        "revoked_at",
        "expires_at",
        "active_display",
    )
    list_filter = (RevokedFilter, "created_at", "expires_at")
    search_fields = ("prefix", "=user__username", "name")
    search_help_text = "A key (jsk_… or just its prefix), a username, or a key's name."
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    actions = ("revoke_keys",)
    add_fieldsets = ((None, {"fields": ("user", "name")}),)
    fieldsets = (
        (None, {"fields": ("key_display", "user", "name", "expires_at")}),
        ("Usage", {"fields": ("created_at", "last_used_at", "revoked_at", "active_display")}),
    )
    change_readonly_fields = (
        "key_display",
        "user",
        "created_at",
        "last_used_at",
        "revoked_at",
        "active_display",
    )

    def get_fieldsets(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return () if obj is None else self.change_readonly_fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ApiKey], search_term: str
    ) -> tuple[QuerySet[ApiKey], bool]:
        """A pasted key (``jsk_<prefix>.<secret>``) finds its row by prefix, never by secret."""
        term = search_term.strip()
        if term.startswith(KEY_MARK):
            prefix = term[len(KEY_MARK) :].split(".", 1)[0].rstrip("…")
            return queryset.filter(prefix=prefix), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="key", ordering="prefix")
    def key_display(self, obj: ApiKey) -> str:
        return f"{KEY_MARK}{obj.prefix}…"

    @admin.display(description="active", boolean=True)
    def active_display(self, obj: ApiKey) -> bool:
        return obj.is_active

    def save_model(self, request: HttpRequest, obj: ApiKey, form: ModelForm, change: bool) -> None:
        """Add: through ``api_key_create``. Change: only the edited columns, so a revocation
        or a last-used stamp written meanwhile is not overwritten by this form's old copy."""
        if change:
            if form.changed_data:
                obj.save(update_fields=form.changed_data)
            return
        api_key, plain_key = api_key_create(user=obj.user, name=obj.name)
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(api_key, field.attname))
        obj._state.adding = False
        obj.plain_key = plain_key  # for response_add's one message; not a model field

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        plain_key = getattr(obj, "plain_key", None)
        if plain_key:
            self.message_user(
                request,
                format_html(
                    "The new API key for {} is <code>{}</code> — copy it now: it is shown only "
                    "this once and cannot be recovered.",
                    obj.user,
                    plain_key,
                ),
                messages.WARNING,
            )
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = already = 0
        for api_key in queryset:
            if api_key.revoked_at is not None:
                already += 1
                continue
            api_key_revoke(api_key)
            revoked += 1
        summary = f"{revoked} revoked" + (f", {already} already revoked" if already else "")
        self.message_user(request, summary, messages.SUCCESS)
