"""Collections and memories for operators: browse, inspect, fix a memory's tags or
importance. Text, positions and hashes are what a job wrote: read-only here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages

from jobs.admin import TextSafeAdmin
from jobs.api.base import InvalidInput, check_json
from jobs.errors import JobsiteError
from processing import services
from processing.models import Collection, Memory, MemoryArchive


class MemoryForm(forms.ModelForm):
    """Tags and metadata pass the API's rule for JSON (``check_json``): an operator can no
    more store a lone surrogate than a client can."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in ("tags", "metadata"):
            if name in cleaned:
                try:
                    check_json(cleaned[name], name=name)
                except InvalidInput as exc:
                    self.add_error(name, exc.message)
        return cleaned


@admin.register(Collection)
class CollectionAdmin(TextSafeAdmin):
    list_display = ("name", "owner", "chunk_size", "chunk_overlap", "created_at")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username")
    readonly_fields = ("id", "created_at", "updated_at")
    ordering = ("-created_at",)


@admin.register(Memory)
class MemoryAdmin(TextSafeAdmin):
    form = MemoryForm
    list_display = ("id", "source", "page", "chunk_index", "collection", "importance", "created_at")
    list_select_related = ("collection",)
    # Sorting and filtering on indexed columns only: the table holds millions of rows.
    list_filter = ("source_type",)
    search_fields = ("=id", "=job_id", "source")
    show_full_result_count = False
    ordering = ("-id",)
    raw_id_fields = ("collection",)
    fields = (
        "collection",
        "source",
        "source_type",
        "page",
        "position",
        "chunk_index",
        "text",
        "tags",
        "metadata",
        "importance",
        "pinned",
        "access_count",
        "last_accessed_at",
        "job_id",
        "source_hash",
        "content_hash",
        "created_at",
        "updated_at",
    )
    # What a job wrote stays as it wrote it; people curate only these.
    readonly_fields = tuple(
        f for f in fields if f not in ("tags", "metadata", "importance", "pinned")
    )

    def save_model(self, request, obj: Memory, form, change: bool) -> None:
        """Write only what may change here, through the service (a full save would put
        back text read before a re-processing job replaced it)."""
        services.memory_update(
            obj,
            tags=obj.tags,
            metadata=obj.metadata,
            importance=obj.importance,
            pinned=obj.pinned,
        )

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(MemoryArchive)
class MemoryArchiveAdmin(TextSafeAdmin):
    """What consolidation archived: restore puts the memories back as they were."""

    list_display = (
        "id",
        "kind",
        "count",
        "collection",
        "original_bytes",
        "stored_bytes",
        "created_at",
        "restored_at",
    )
    list_select_related = ("collection",)
    list_filter = ("kind",)
    search_fields = ("=id", "=job_id")
    ordering = ("-id",)
    raw_id_fields = ("collection",)
    exclude = ("data",)
    readonly_fields = (
        "collection",
        "kind",
        "replacement_id",
        "count",
        "original_bytes",
        "stored_bytes",
        "job_id",
        "created_at",
        "restored_at",
    )
    actions = ("restore",)

    @admin.action(description="Restore the archived memories")
    def restore(self, request, queryset) -> None:
        for archive in queryset:
            try:
                count = services.memory_archive_restore(archive)
            except JobsiteError as exc:  # a Conflict says why, per archive
                self.message_user(request, f"Archive {archive.pk}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Archive {archive.pk}: {count} memories restored")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
