"""What keeps the admin's lists fast on millions of rows.

No COUNT(*) of a whole table, no SELECT DISTINCT to offer filter choices, and none of
the heavy columns loaded for a list that does not show them.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from jobs import registry
from jobs.models import Job

# At or above this many rows (by PostgreSQL's estimate) an unfiltered list shows the estimate.
ESTIMATE_FROM = 100_000
# Columns the job list does not need; a traceback alone can be 20 kB per row.
LIST_DEFERRED = ("params", "result", "error_message", "error_traceback", "request_fingerprint")


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


def job_id_from(term: str) -> uuid.UUID | None:
    """A search term that is a whole UUID means one job: found by key, not by a scan."""
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None
