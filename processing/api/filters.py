"""List filters for memories."""

from __future__ import annotations

import django_filters

from jobs.api.base import UtcIsoDateTimeFilter
from processing.models import Memory
from processing.selectors import memories_with_tag


class MemoryFilter(django_filters.FilterSet):
    collection_id = django_filters.UUIDFilter(field_name="collection_id")
    job_id = django_filters.UUIDFilter(field_name="job_id", help_text="The job that made it.")
    tag = django_filters.CharFilter(method="filter_tag", max_length=100)
    source = django_filters.CharFilter(field_name="source")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Memory
        fields = ["collection_id", "job_id", "tag", "source", "created_after", "created_before"]

    def filter_tag(self, queryset, name, value):
        return memories_with_tag(queryset, value)
