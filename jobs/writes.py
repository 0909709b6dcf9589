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


class FromRow(str):
    """An event value taken from the row as written (say, its new ``attempts``)."""


def _event_sql(source: str, event: dict[str, Any], db: str) -> tuple[str, list[Any]]:
    """``INSERT INTO jobs_jobevent ... SELECT id, <values> FROM source``."""
    connection = connections[db]
    quote = connection.ops.quote_name
    columns = [c for c in _EVENT_COLUMNS if c != "job_id"]
    exprs, params = [], []
    for column in columns:
        value = event.get(column)
        if isinstance(value, FromRow):
            exprs.append(f"{source}.{quote(value)}")
        else:
            exprs.append("%s")
            params.append(JobEvent._meta.get_field(column).get_db_prep_save(value, connection))
    names = ", ".join(quote(c) for c in ("job_id", *columns))
    table = quote(JobEvent._meta.db_table)
    return f"INSERT INTO {table} ({names}) SELECT id, {', '.join(exprs)} FROM {source}", params


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


def update_returning_with_event(
    query: QuerySet, pk: Any, values: dict[str, Any], event: dict[str, Any], fields: list[str]
) -> Model | None:
    """Like ``update_with_event``, and give back the written row (only ``fields``), or None
    when nothing matched: one round trip where a claim would otherwise take three."""
    model, connection = query.model, connections[query.db]
    if connection.vendor != "postgresql":
        with transaction.atomic(using=query.db):
            if not query.update(**values):
                return None
            obj = model._default_manager.using(query.db).only(*fields).get(pk=pk)
            JobEvent.objects.using(query.db).create(
                **{k: getattr(obj, v) if isinstance(v, FromRow) else v for k, v in event.items()}
            )
        return obj
    quote = connection.ops.quote_name
    update = query.query.chain(sql.UpdateQuery)
    update.add_update_values(values)
    update_sql, update_params = update.get_compiler(query.db).as_sql()
    table = quote(model._meta.db_table)
    # from_db takes the values in the model's field order, whatever order names them.
    wanted = {"id", *fields}
    names = [f.name for f in model._meta.concrete_fields if f.name in wanted]
    returning = ", ".join(f"{table}.{quote(model._meta.get_field(f).column)}" for f in names)
    insert_sql, insert_params = _event_sql("moved", event, query.db)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH moved AS ({update_sql} RETURNING {returning}), ev AS ({insert_sql}) "
            f"SELECT {', '.join(quote(model._meta.get_field(f).column) for f in names)} FROM moved",
            [*update_params, *insert_params],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    converted = []
    for name, value in zip(names, row, strict=True):
        field = model._meta.get_field(name)
        for converter in field.get_db_converters(connection):
            value = converter(value, field.get_col(model._meta.db_table), connection)
        converted.append(value)
    return model.from_db(query.db, names, converted)


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
