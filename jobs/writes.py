"""A row write and its event in ONE statement on PostgreSQL (a data-modifying CTE).

Every job costs a create, a claim and a completion, each a row write plus an event row.
As an UPDATE, an INSERT and a COMMIT that is three round trips; as one
``WITH moved AS (UPDATE ... RETURNING id) INSERT INTO jobs_jobevent ... SELECT ... FROM
moved`` it is one, in autocommit. The SQL of the row write is Django's own (its compiler
builds it from the queryset), so the conditions, expressions and value adaptation are
exactly those of ``QuerySet.update`` and ``Model.save``. Other databases (SQLite, the
embedded default) take the plain ORM path in a transaction.

The two statements every job runs in the worker, its claim and its completion, are also
written out by hand (``claim``, ``complete``): building them through the ORM cost ten
times the CPU of running them, and they decide how many jobs a worker moves per second.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, transaction
from django.db.models import Model, QuerySet, sql

from jobs.models import Job, JobEvent

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
    return None if row is None else model_from_row(model, names, row, query.db)


def model_from_row(model: type[Model], names: list[str], row: Any, db: str) -> Model:
    """A model instance from raw column values, converted as the ORM would."""
    connection = connections[db]
    converted = []
    for name, value in zip(names, row, strict=True):
        field = model._meta.get_field(name)
        for converter in field.get_db_converters(connection):
            value = converter(value, field.get_col(model._meta.db_table), connection)
        converted.append(value)
    return model.from_db(db, names, converted)


_insert_cache: dict[type[Model], tuple[str, list[Any]]] = {}


def insert_with_event(obj: Model, event: dict[str, Any], using: str = "default") -> None:
    """``obj.save(force_insert=True)`` and the event for the new row."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        with transaction.atomic(using=using):
            obj.save(force_insert=True, using=using)
            JobEvent.objects.using(using).create(job_id=obj.pk, **event)
        return
    model = type(obj)
    if model not in _insert_cache:
        fields = [f for f in model._meta.local_concrete_fields if not f.generated]
        insert = sql.InsertQuery(model)
        insert.insert_values(fields, [model()])
        [(insert_sql, _)] = insert.get_compiler(using).as_sql()
        _insert_cache[model] = (insert_sql, fields)
    insert_sql, fields = _insert_cache[model]
    # What the ORM's compiler does per value, without compiling the statement each time.
    insert_params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    table = connection.ops.quote_name(obj._meta.db_table)
    event_sql, event_params = _event_sql("created", event, using)
    with _prepared_cursor(using) as cursor:
        cursor.execute(
            f"WITH created AS ({insert_sql} RETURNING {table}.id) {event_sql}",
            [*insert_params, *event_params],
        )
    obj._state.adding = False
    obj._state.db = using


# --- the worker's two statements, written out (PostgreSQL) ---------------------------------

_EVENT_INSERT = (
    "INSERT INTO jobs_jobevent (job_id, at, kind, from_status, to_status, actor, reason, "
    "attempt, data) SELECT id, %(now)s, %(kind)s, %(from)s, %(to)s, %(actor)s, %(reason)s, "
    "{attempt}, NULL FROM moved"
)

# ``status || ''`` in the two statements below: compared bare, a custom plan for
# ``status = 'pending'`` may take the partial index job_pending (statistics from before a
# backlog say it is tiny) and walk every pending entry, dead ones included, to find one id:
# each claim then costs O(backlog). The expression leaves the primary key the only index.
_CLAIM = (
    "WITH moved AS (UPDATE jobs_job SET status = %(to)s, updated_at = %(now)s, "
    "attempts = attempts + 1, started_at = COALESCE(started_at, %(now)s), "
    "heartbeat_at = %(now)s, attempt_started_at = %(now)s, celery_task_id = %(task_id)s, "
    "worker = %(worker)s, next_retry_at = NULL, progress = 0, current_step = '', "
    "dispatched_at = NULL "
    "WHERE id = %(id)s AND status || '' = %(from)s AND (%(due)s::timestamptz IS NULL "
    "OR next_retry_at IS NULL OR next_retry_at <= %(due)s::timestamptz) "
    "RETURNING {columns}), "
    f"event AS ({_EVENT_INSERT.format(attempt='attempts')}) "
    "SELECT {columns} FROM moved"
)

_COMPLETE = (
    "WITH moved AS (UPDATE jobs_job SET status = %(to)s, updated_at = %(now)s, "
    "result = %(result)s, progress = 100, completed_at = %(now)s, heartbeat_at = NULL, "
    "error_code = '', error_message = '', error_traceback = '' "
    "WHERE id = %(id)s AND status || '' = %(from)s AND celery_task_id = %(task_id)s RETURNING id) "
    f"{_EVENT_INSERT.format(attempt='%(attempt)s')}"
)


def _prepared_cursor(db: str) -> Any:
    """A cursor binding parameters on the server, where psycopg prepares a statement run
    five times: PostgreSQL then parses and plans each of these two once per connection.
    (Django's own cursors bind on the client, which cannot prepare.)"""
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection = connections[db]
    connection.ensure_connection()
    # _prepare_cursor: Django's wrapper, so the statement is logged and counted as any other.
    return connection._prepare_cursor(ServerBindingCursor(connection.connection))


_claim_cache: dict[tuple[str, ...], tuple[str, list[str]]] = {}


def claim(
    job_id: Any, *, fields: tuple[str, ...], db: str = "default", **values: Any
) -> Job | None:
    """The claim's UPDATE, its event and the row's ``fields`` in one statement; ``values``
    names ``now``, ``from``, ``to``, ``due`` (or None), ``task_id``, ``worker``, ``kind``,
    ``actor`` and ``reason``."""
    if fields not in _claim_cache:
        wanted = {"id", *fields}
        names = [f.name for f in Job._meta.concrete_fields if f.name in wanted]
        columns = ", ".join(Job._meta.get_field(name).column for name in names)
        _claim_cache[fields] = (_CLAIM.format(columns=columns), names)
    statement, names = _claim_cache[fields]
    with _prepared_cursor(db) as cursor:
        cursor.execute(statement, {"id": job_id, **values})
        row = cursor.fetchone()
    return None if row is None else model_from_row(Job, names, row, db)


def complete(job_id: Any, *, result: Any, db: str = "default", **values: Any) -> bool:
    """The completion's UPDATE and its event in one statement; ``values`` as for ``claim``
    plus ``attempt``, less ``due`` and ``worker``."""
    connection = connections[db]
    stored = Job._meta.get_field("result").get_db_prep_save(result, connection)
    with _prepared_cursor(db) as cursor:
        cursor.execute(_COMPLETE, {"id": job_id, "result": stored, **values})
        return cursor.rowcount == 1
