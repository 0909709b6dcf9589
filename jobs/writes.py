"""A row write and its event in ONE statement on PostgreSQL (a data-modifying CTE).

Every job costs a create, a claim and a completion, each a row write plus an event row.
As an UPDATE, an INSERT and a COMMIT that is three round trips; as one
``WITH moved AS (UPDATE ... RETURNING id) INSERT INTO jobs_jobevent ... SELECT ... FROM
moved`` it is one, in autocommit. The SQL of the row write is Django's own (its compiler
builds it from the queryset), so the conditions, expressions and value adaptation are
exactly those of ``QuerySet.update`` and ``Model.save``. Other databases (SQLite, the
embedded default) take the plain ORM path in a transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, transaction
from django.db.models import Model, QuerySet, sql

from jobs.models import JobEvent

_EVENT_COLUMNS = (
    "job_id",
    "at",
    "kind",
    "from_status",
    "to_status",
    "actor",
    "reason",
    "attempt",
    "data",
)


def _event_sql(source: str, event: dict[str, Any], db: str) -> tuple[str, list[Any]]:
    """``INSERT INTO jobs_jobevent ... SELECT id, <values> FROM source``."""
    connection = connections[db]
    columns = [c for c in _EVENT_COLUMNS if c != "job_id"]
    params = [
        JobEvent._meta.get_field(c).get_db_prep_save(event.get(c), connection) for c in columns
    ]
    names = ", ".join(connection.ops.quote_name(c) for c in ("job_id", *columns))
    placeholders = ", ".join(["%s"] * len(columns))
    table = connection.ops.quote_name(JobEvent._meta.db_table)
    return f"INSERT INTO {table} ({names}) SELECT id, {placeholders} FROM {source}", params


def update_with_event(query: QuerySet, values: dict[str, Any], event: dict[str, Any]) -> bool:
    """``query.update(**values)`` on one row and, if it changed, insert ``event`` (which
    names the row in ``job_id``)."""
    connection = connections[query.db]
    if connection.vendor != "postgresql":
        with transaction.atomic(using=query.db):
            if not query.update(**values):
                return False
            JobEvent.objects.using(query.db).create(**event)
        return True
    update = query.query.chain(sql.UpdateQuery)
    update.add_update_values(values)
    update_sql, update_params = update.get_compiler(query.db).as_sql()
    table = connection.ops.quote_name(query.model._meta.db_table)
    insert_sql, insert_params = _event_sql("moved", event, query.db)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH moved AS ({update_sql} RETURNING {table}.id) {insert_sql}",
            [*update_params, *insert_params],
        )
        return cursor.rowcount == 1


def insert_with_event(obj: Model, event: dict[str, Any], using: str = "default") -> None:
    """``obj.save(force_insert=True)`` and the event for the new row."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        with transaction.atomic(using=using):
            obj.save(force_insert=True, using=using)
            JobEvent.objects.using(using).create(job_id=obj.pk, **event)
        return
    fields = [f for f in obj._meta.local_concrete_fields if not f.generated]
    insert = sql.InsertQuery(obj._meta.model)
    insert.insert_values(fields, [obj])
    [(insert_sql, insert_params)] = insert.get_compiler(using).as_sql()
    table = connection.ops.quote_name(obj._meta.db_table)
    event_sql, event_params = _event_sql("created", event, using)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH created AS ({insert_sql} RETURNING {table}.id) {event_sql}",
            [*insert_params, *event_params],
        )
    obj._state.adding = False
    obj._state.db = using
