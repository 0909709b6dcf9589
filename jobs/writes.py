"""Every write of a Job's status, for every engine: the one module that knows the engine.

A status write is an UPDATE on the status it observed plus an event row, checked first
against ``jobs.transitions``. On PostgreSQL both go in ONE statement (a data-modifying
CTE, ``WITH moved AS (UPDATE ... RETURNING id) INSERT INTO jobs_jobevent ... SELECT ...
FROM moved``), in autocommit: one round trip where an UPDATE, an INSERT and a COMMIT take
three. Elsewhere (SQLite, the embedded default) it is the ORM's UPDATE and INSERT in a
transaction.

Most status writes build their UPDATE with Django's compiler (``transition``). The two
every job runs in the worker, its claim and its completion, decide how many jobs a worker
moves per second, and compiling them through the ORM cost ten times the CPU of running
them: they are declared once as column-to-value tables (``CLAIM``, ``COMPLETE``), from
which this module builds both the PostgreSQL statement (once per process, prepared on the
server) and the ORM's ``update()`` values for other engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.db import connections, transaction
from django.db.models import F, JSONField, Model, Q, QuerySet, Value, sql
from django.db.models.functions import Coalesce

from jobs.models import Job, JobEvent, JobStatus
from jobs.transitions import INITIAL, can_transition

# Whether PostgreSQL takes the one-statement paths. Off, it takes the ORM's, as SQLite
# does: the parity test runs both on one database and compares what they wrote.
ONE_STATEMENT = True


def _one_statement(db: str) -> bool:
    return ONE_STATEMENT and connections[db].vendor == "postgresql"


def check_transition(from_status: str, to_status: str) -> None:
    """Refuse a move the table forbids, before anything is written."""
    if not can_transition(from_status, to_status):
        raise ValueError(f"transition {from_status} -> {to_status} is not allowed")


# --- a column-to-value table, for SQL and for the ORM ---------------------------------------


class Arg(str):
    """A value given with each call, by name (``now``, ``task_id``...)."""


class FromRow(str):
    """An event value taken from the row as written (say, its new ``attempts``)."""


@dataclass(frozen=True)
class Plus:
    """The column's value plus ``n`` (``attempts + 1``)."""

    n: int


@dataclass(frozen=True)
class Unless:
    """The column's value if it has one, else the argument (a first start is kept)."""

    arg: Arg


_ATTEMPT = Arg("attempt")


@dataclass(frozen=True)
class StatusWrite:
    """One hot status write, declared once: ``values`` maps each column to a constant, an
    ``Arg``, ``Plus`` or ``Unless``; ``match`` names the columns (besides id and status)
    that must equal an argument; ``due`` adds "and not before ``%(due)s``" (a retry's
    backoff); the event's ``attempt`` is an argument or the row's new value."""

    to_status: str
    values: dict[str, Any]
    match: dict[str, Arg] = field(default_factory=dict)
    due: bool = False
    attempt: Arg | FromRow = _ATTEMPT

    def orm_values(self, args: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for column, value in self.values.items():
            if isinstance(value, Arg):
                out[column] = args[value]
            elif isinstance(value, Plus):
                out[column] = F(column) + value.n
            elif isinstance(value, Unless):
                out[column] = Coalesce(F(column), Value(args[value.arg]))
            else:
                out[column] = value
        return {"status": self.to_status, "updated_at": args["now"], **out}

    def orm_where(self, args: dict[str, Any]) -> Q:
        where = Q(**{column: args[arg] for column, arg in self.match.items()})
        if self.due and args["due"] is not None:
            where &= Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=args["due"])
        return where

    def sql(self, returning: list[str]) -> str:
        """The UPDATE, its event and the row's ``returning`` columns, in one statement.

        ``status || ''``: compared bare, a custom plan for ``status = 'pending'`` may take
        the partial index job_pending (statistics from before a backlog say it is tiny)
        and walk every pending entry, dead ones included, to find one id: each claim then
        costs O(backlog). The expression leaves the primary key the only index.
        """
        sets = ["status = %(to)s, updated_at = %(now)s"]
        for column, value in self.values.items():
            if isinstance(value, Arg):
                sets.append(f"{column} = %({value})s")
            elif isinstance(value, Plus):
                sets.append(f"{column} = {column} + {value.n}")
            elif isinstance(value, Unless):
                sets.append(f"{column} = COALESCE({column}, %({value.arg})s)")
            else:
                sets.append(f"{column} = %(set_{column})s")
        where = ["id = %(id)s", "status || '' = %(from)s"]
        where += [f"{column} = %({arg})s" for column, arg in self.match.items()]
        if self.due:
            where.append(
                "(%(due)s::timestamptz IS NULL OR next_retry_at IS NULL "
                "OR next_retry_at <= %(due)s::timestamptz)"
            )
        attempt = self.attempt if isinstance(self.attempt, FromRow) else f"%({self.attempt})s"
        columns = ", ".join(Job._meta.get_field(name).column for name in returning)
        return (
            f"WITH moved AS (UPDATE jobs_job SET {', '.join(sets)} WHERE {' AND '.join(where)} "
            f"RETURNING {columns}), event AS (INSERT INTO jobs_jobevent (job_id, at, kind, "
            "from_status, to_status, actor, reason, attempt, data) SELECT id, %(now)s, "
            f"%(kind)s, %(from)s, %(to)s, %(actor)s, %(reason)s, {attempt}, NULL FROM moved) "
            f"SELECT {columns} FROM moved"
        )

    def sql_params(self, args: dict[str, Any], db: str) -> dict[str, Any]:
        """The arguments as the database takes them: psycopg adapts text, numbers and
        datetimes itself; a JSON column's value goes through its field."""
        connection = connections[db]
        params = {**args, **self._constants}
        for arg, field_ in self._json_args:
            params[arg] = field_.get_db_prep_save(args[arg], connection)
        return params

    @cached_property
    def _constants(self) -> dict[str, Any]:
        constants = {"to": self.to_status, "kind": JobEvent.Kind.TRANSITION}
        for column, value in self.values.items():
            if not isinstance(value, Arg | Plus | Unless):
                constants[f"set_{column}"] = value
        return constants

    @cached_property
    def _json_args(self) -> tuple[tuple[str, Any], ...]:
        found = []
        for column, value in [*self.values.items(), *self.match.items()]:
            arg = value.arg if isinstance(value, Unless) else value
            field_ = Job._meta.get_field(column)
            if isinstance(arg, Arg) and isinstance(field_, JSONField):
                found.append((str(arg), field_))
        return tuple(found)


# One attempt takes the job (pending, or retrying and due).
CLAIM = StatusWrite(
    to_status=JobStatus.RUNNING,
    values={
        "attempts": Plus(1),
        "started_at": Unless(Arg("now")),
        "heartbeat_at": Arg("now"),
        "attempt_started_at": Arg("now"),
        "celery_task_id": Arg("task_id"),
        "worker": Arg("worker"),
        "next_retry_at": None,
        "progress": 0.0,
        "current_step": "",
        "dispatched_at": None,
    },
    due=True,
    attempt=FromRow("attempts"),
)

# The attempt that holds the job finishes it.
COMPLETE = StatusWrite(
    to_status=JobStatus.COMPLETED,
    values={
        "result": Arg("result"),
        "progress": 100.0,
        "completed_at": Arg("now"),
        "heartbeat_at": None,
        "error_code": "",
        "error_message": "",
        "error_traceback": "",
    },
    match={"celery_task_id": Arg("task_id")},
)

_statements: dict[tuple[int, tuple[str, ...]], str] = {}
_returning: dict[tuple[int, tuple[str, ...]], list[str]] = {}


def _returned(write: StatusWrite, returning: tuple[str, ...]) -> list[str]:
    """The columns a hot write reads back: ``returning``, the id, and what its event takes
    from the row, in the model's field order (from_db's), worked out once per shape."""
    key = (id(write), returning)
    if key not in _returning:
        wanted = {"id", *returning}
        if isinstance(write.attempt, FromRow):
            wanted.add(write.attempt)
        _returning[key] = [f.name for f in Job._meta.concrete_fields if f.name in wanted]
    return _returning[key]


def _hot_write(
    write: StatusWrite, job_id: Any, from_status: str, returning: tuple[str, ...], **args: Any
) -> Job | None:
    """Run ``write`` from ``from_status``; the row's ``returning`` fields, or None when
    the job was not there to move."""
    check_transition(from_status, write.to_status)
    args = {"id": job_id, "from": from_status, **args}
    db = "default"
    names = _returned(write, returning)
    if not _one_statement(db):
        event = {
            "job_id": job_id,
            "at": args["now"],
            "kind": JobEvent.Kind.TRANSITION,
            "from_status": from_status,
            "to_status": write.to_status,
            "actor": args["actor"],
            "reason": args["reason"],
            "attempt": write.attempt if isinstance(write.attempt, FromRow) else args["attempt"],
            "data": None,
        }
        query = Job.objects.filter(pk=job_id, status=from_status).filter(write.orm_where(args))
        return _update_returning(query, job_id, write.orm_values(args), event, names)
    key = (id(write), returning)
    if key not in _statements:
        _statements[key] = write.sql(names)
    statement = _statements[key]
    with _prepared_cursor(db) as cursor:
        cursor.execute(statement, write.sql_params(args, db))
        row = cursor.fetchone()
    return None if row is None else model_from_row(Job, names, row, db)


def claim(job_id: Any, from_status: str, *, fields: tuple[str, ...], **args: Any) -> Job | None:
    """The claim (``CLAIM``), its event and the row's ``fields``; ``args`` names ``now``,
    ``due`` (or None), ``task_id``, ``worker``, ``actor`` and ``reason``."""
    return _hot_write(CLAIM, job_id, from_status, fields, **args)


def complete(job_id: Any, *, fields: tuple[str, ...] = (), **args: Any) -> Job | None:
    """The completion (``COMPLETE``), its event and the row's ``fields``, or None when the
    attempt no longer held the job; ``args`` names ``now``, ``task_id``, ``result``,
    ``attempt``, ``actor`` and ``reason``."""
    return _hot_write(COMPLETE, job_id, JobStatus.RUNNING, fields, **args)


# --- any other status write --------------------------------------------------------------

_EVENT_COLUMNS = (
    "at",
    "kind",
    "from_status",
    "to_status",
    "actor",
    "reason",
    "attempt",
    "data",
)


def transition(
    query: QuerySet,
    from_status: str,
    to_status: str,
    values: dict[str, Any],
    event: dict[str, Any],
    returning: list[str] | None = None,
) -> Any:
    """``query.update(status=to_status, **values)`` on one job still in ``from_status``
    and, if it moved, ``event`` (which names the row in ``job_id``). Returns whether it
    moved or, with ``returning``, the moved row with those fields (None if it did not)."""
    check_transition(from_status, to_status)
    query = query.filter(status=from_status)
    values = {"status": to_status, **values}
    event = {**event, "kind": JobEvent.Kind.TRANSITION}
    event.update(from_status=from_status, to_status=to_status)
    job_id = event["job_id"]
    if returning is None:
        return _update(query, values, event)
    return _update_returning(query, job_id, values, event, returning)


def _event_sql(source: str, event: dict[str, Any], db: str) -> tuple[str, list[Any]]:
    """``INSERT INTO jobs_jobevent ... SELECT id, <values> FROM source``."""
    connection = connections[db]
    quote = connection.ops.quote_name
    exprs, params = [], []
    for column in _EVENT_COLUMNS:
        value = event.get(column)
        if isinstance(value, FromRow):
            exprs.append(f"{source}.{quote(value)}")
        else:
            exprs.append("%s")
            params.append(JobEvent._meta.get_field(column).get_db_prep_save(value, connection))
    names = ", ".join(quote(c) for c in ("job_id", *_EVENT_COLUMNS))
    table = quote(JobEvent._meta.db_table)
    return f"INSERT INTO {table} ({names}) SELECT id, {', '.join(exprs)} FROM {source}", params


def _compiled_update(query: QuerySet, values: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The SQL of ``query.update(**values)``, exactly as Django's compiler builds it."""
    update = query.query.chain(sql.UpdateQuery)
    update.add_update_values(values)
    return update.get_compiler(query.db).as_sql()


def _update(query: QuerySet, values: dict[str, Any], event: dict[str, Any]) -> bool:
    connection = connections[query.db]
    if not _one_statement(query.db):
        with transaction.atomic(using=query.db):
            if not query.update(**values):
                return False
            JobEvent.objects.using(query.db).create(**event)
        return True
    update_sql, update_params = _compiled_update(query, values)
    table = connection.ops.quote_name(query.model._meta.db_table)
    insert_sql, insert_params = _event_sql("moved", event, query.db)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH moved AS ({update_sql} RETURNING {table}.id) {insert_sql}",
            [*update_params, *insert_params],
        )
        return cursor.rowcount == 1


def _update_returning(
    query: QuerySet, pk: Any, values: dict[str, Any], event: dict[str, Any], fields: list[str]
) -> Model | None:
    model, connection = query.model, connections[query.db]
    if not _one_statement(query.db):
        rows = model._default_manager.using(query.db).only(*fields)
        if not any(isinstance(v, FromRow) for v in event.values()):
            # The row is read after the commit: SQLite's write lock (every worker's) is held
            # for the UPDATE and the event only, and the change is recorded that much sooner.
            with transaction.atomic(using=query.db):
                if not query.update(**values):
                    return None
                JobEvent.objects.using(query.db).create(**event)
            return rows.filter(pk=pk).first() or model(pk=pk)  # gone already: it did move
        with transaction.atomic(using=query.db):
            if not query.update(**values):
                return None
            obj = rows.get(pk=pk)
            JobEvent.objects.using(query.db).create(
                **{k: getattr(obj, v) if isinstance(v, FromRow) else v for k, v in event.items()}
            )
        return obj
    quote = connection.ops.quote_name
    update_sql, update_params = _compiled_update(query, values)
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


_row_plans: dict[tuple[type[Model], tuple[str, ...], str], tuple[list[str], list[Any]]] = {}


def model_from_row(model: type[Model], names: list[str], row: Any, db: str) -> Model:
    """A model instance from raw column values, converted as the ORM would (the fields'
    converters looked up once per shape of row)."""
    connection = connections[db]
    key = (model, tuple(names), db)
    if key not in _row_plans:
        attnames, converters = [], []
        for name in names:
            field_ = model._meta.get_field(name)
            col = field_.get_col(model._meta.db_table)
            converters.append([(c, col) for c in field_.get_db_converters(connection)])
            attnames.append(field_.attname)  # from_db knows a foreign key by its column
        _row_plans[key] = (attnames, converters)
    attnames, converters = _row_plans[key]
    converted = []
    for value, steps in zip(row, converters, strict=True):
        for converter, col in steps:
            value = converter(value, col, connection)
        converted.append(value)
    return model.from_db(db, attnames, converted)


# --- a new job ------------------------------------------------------------------------------

_insert_cache: dict[type[Model], tuple[str, list[Any]]] = {}


def insert_with_event(obj: Job, event: dict[str, Any], using: str = "default") -> None:
    """``obj.save(force_insert=True)`` and the event for the new row."""
    if obj.status not in INITIAL:
        raise ValueError(f"a job cannot be created {obj.status}")
    event = {**event, "from_status": "", "to_status": obj.status}
    connection = connections[using]
    if not _one_statement(using):
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


def _prepared_cursor(db: str) -> Any:
    """A cursor binding parameters on the server, where psycopg prepares a statement run
    five times: PostgreSQL then parses and plans each hot statement once per connection.
    (Django's own cursors bind on the client, which cannot prepare.)"""
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection = connections[db]
    connection.ensure_connection()
    # _prepare_cursor: Django's wrapper, so the statement is logged and counted as any other.
    return connection._prepare_cursor(ServerBindingCursor(connection.connection))
