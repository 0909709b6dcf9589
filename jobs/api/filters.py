"""List filters and cursor pagination for jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.utils import timezone
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
    batch = django_filters.UUIDFilter(field_name="batch", help_text="The jobs of one batch.")

    class Meta:
        model = Job
        fields = ["status", "type", "created_after", "created_before", "batch"]


def _invalid_cursor() -> exceptions.ValidationError:
    return exceptions.ValidationError({"cursor": ["invalid cursor"]})


class NewestFirst(CursorPagination):
    """Stable under inserts, and no COUNT(*) on a table of millions."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        self._position_field = queryset.model._meta.get_field(self.ordering[0].lstrip("-"))
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        """A cursor is the client's text: DRF checks its offset, but puts its position
        (``p``) into the query as it is (a 500 on ``p=zzz``). It must be a value of the
        ordering column, and a datetime goes in as UTC (see ``UtcIsoDateTimeField``)."""
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise _invalid_cursor() from None
        if cursor is None or cursor.position is None:
            return cursor
        field = self._position_field
        try:
            value = field.to_python(cursor.position)
            field.run_validators(value)
            if isinstance(value, datetime):
                if timezone.is_naive(value):
                    value = timezone.make_aware(value, UTC)
                value = value.astimezone(UTC)
        except (ValidationError, ValueError, TypeError, OverflowError):
            raise _invalid_cursor() from None
        if value is None:
            raise _invalid_cursor()
        return cursor._replace(
            position=value.isoformat() if isinstance(value, datetime) else str(value)
        )


class OldestFirst(NewestFirst):
    ordering = ("id",)
    page_size = 200
