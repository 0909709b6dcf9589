"""List filters and cursor pagination for jobs."""

from __future__ import annotations

import django_filters
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination

from jobs.models import Job, JobStatus


class StatusInFilter(django_filters.BaseInFilter, django_filters.ChoiceFilter):
    """``?status=running,failed``"""


class JobFilter(django_filters.FilterSet):
    status = StatusInFilter(choices=JobStatus.choices, help_text="Comma-separated statuses.")
    type = django_filters.CharFilter(field_name="type")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

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
