"""The ApiKey admin: make, name and revoke API keys; never show or edit a hash.

Keys are made by ``jobs.auth.api_key_create`` and revoked by ``api_key_revoke``, as the
management commands do, so a key made here is hashed and prefixed like any other.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from jobs.admin.base import TextSafeAdmin
from jobs.auth import KEY_MARK, api_key_create, api_key_revoke
from jobs.models import ApiKey


class RevokedFilter(admin.SimpleListFilter):
    """Revoked or not: operators ask yes/no, while the column holds a timestamp."""

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
