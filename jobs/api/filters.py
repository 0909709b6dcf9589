"""List filters and cursor pagination for jobs."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination

from jobs.models import STATUS_SYNONYMS, Job, JobStatus, status_from_client


class StatusInFilter(django_filters.BaseInFilter, django_filters.ChoiceFilter):
    """``?status=running,failed`` (``processing`` is ``running``: ``STATUS_SYNONYMS``)."""

    def filter(self, qs: Any, value: Any) -> Any:
        if value:
            value = sorted({status_from_client(name) for name in value})
        return super().filter(qs, value)


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 datetime, turned into UTC here: PostgreSQL refuses UTC offsets past
    ±15:59 that Python accepts (a fuzzer found ``+19:56`` as a 500)."""

    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        if value is None or value.tzinfo is None:
            return value
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValidationError("date out of range") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class JobFilter(django_filters.FilterSet):
    status = StatusInFilter(
        choices=[*JobStatus.choices, *((word, ours) for word, ours in STATUS_SYNONYMS.items())],
        help_text="Comma-separated statuses (processing: a synonym of running).",
    )
    type = django_filters.CharFilter(field_name="type")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Job
        fields = ["status", "type", "created_after", "created_before"]


class NewestFirst(CursorPagination):
    """Stable under inserts, and no COUNT(*) on a table of millions."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError({"cursor": ["invalid cursor"]}) from None


class OldestFirst(NewestFirst):
    ordering = ("id",)
    page_size = 200
