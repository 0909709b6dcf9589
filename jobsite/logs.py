"""Which job a log line is about, on every line that job causes, and the two shapes of a
line (``JOBSITE_LOG_FORMAT``: ``plain`` for people, ``json`` for log pipelines).

The context is set at a few choke points (a worker's attempt, a request acting on one job, a
webhook delivery), never passed to each log call: the lines that matter when a job goes
wrong are often not ours (Celery's, httpx's, the database driver's), and a filter on the
handler stamps every record whoever logged it. It lives in a ``ContextVar``, not a
thread-local: coroutines sharing one thread (an ``async def`` job, the ASGI app) each keep
their own job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

# The job fields a line carries, in this order.
FIELDS = ("job_id", "job_type", "attempt", "owner_id")
# How a Python child process started by a job learns the job's context (``child_env``).
ENV_VAR = "JOBSITE_LOG_CONTEXT"
# The API's timestamp shape (jobs/timestamps.py), so logs and responses compare as strings.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

JobFields = Mapping[str, Any]
_EMPTY: JobFields = MappingProxyType({})
_context: ContextVar[JobFields] = ContextVar("jobsite_log_context", default=_EMPTY)


def _from_env() -> JobFields:
    """A context handed down by a parent process, or none (a bad value is ignored: logging
    must never stop a process from starting)."""
    try:
        inherited = json.loads(os.environ.get(ENV_VAR) or "{}")
    except ValueError:
        return _EMPTY
    if not isinstance(inherited, dict):
        return _EMPTY
    return MappingProxyType({k: inherited[k] for k in FIELDS if inherited.get(k) is not None})


_inherited = _from_env()


def _fields(job: Any, explicit: dict[str, Any]) -> dict[str, Any]:
    """The job's fields, read only from what the instance already holds: a log context
    never costs a query (a deferred field is left out, not loaded)."""
    loaded = vars(job) if job is not None else {}
    found = {
        "job_id": loaded.get("id"),
        "job_type": loaded.get("type"),
        "attempt": loaded.get("attempts"),
        "owner_id": loaded.get("owner_id"),
    }
    found.update((name, value) for name, value in explicit.items() if value is not None)
    if found["job_id"] is not None:
        found["job_id"] = str(found["job_id"])
    return {name: value for name, value in found.items() if value is not None}


def _merged(job: Any, explicit: dict[str, Any]) -> JobFields:
    """The current context with these fields added; another job's fields start afresh."""
    new = _fields(job, explicit)
    current = current_fields()
    if "job_id" in new and new["job_id"] != current.get("job_id"):
        current = _EMPTY
    return MappingProxyType({**current, **new})


@contextlib.contextmanager
def job_context(
    job: Any = None,
    *,
    job_id: Any = None,
    job_type: str | None = None,
    attempt: int | None = None,
    owner_id: Any = None,
) -> Iterator[JobFields]:
    """Every line logged inside, by any logger, in this thread or coroutine (and in the
    processes it forks), carries this job's fields. ``job`` is a ``Job`` row; keywords add
    to or override what it holds. Nested for the same job, fields accumulate; for another
    job, the inner block is that job's alone. On exit the outer context is back."""
    explicit = {"job_id": job_id, "job_type": job_type, "attempt": attempt, "owner_id": owner_id}
    token = _context.set(_merged(job, explicit))
    try:
        yield _context.get()
    finally:
        _context.reset(token)


def bind_job(
    job: Any = None,
    *,
    job_type: str | None = None,
    attempt: int | None = None,
    owner_id: Any = None,
) -> None:
    """Add what became known later (the claim tells the worker the job's type, attempt and
    owner) to the enclosing ``job_context`` until it ends: past it, Celery's own lines about
    the attempt and the completion written by its signal handlers carry them too. Outside
    a ``job_context`` of the same job it does nothing: what it adds must end with one."""
    explicit = {"job_type": job_type, "attempt": attempt, "owner_id": owner_id}
    fields = _merged(job, explicit)
    job_id = _context.get().get("job_id")
    if job_id is not None and fields.get("job_id") == job_id:
        _context.set(fields)


def current_fields() -> JobFields:
    """The job fields lines logged here carry now (empty outside a job)."""
    return _context.get() or _inherited


def child_env() -> dict[str, str]:
    """Environment for a Python child process a job starts (spawned, or a subprocess that
    sets up Django's logging): its lines then carry the job too. A forked child needs
    nothing: it inherits the context with the rest of its parent's memory."""
    fields = current_fields()
    return {ENV_VAR: json.dumps(dict(fields), default=str)} if fields else {}


class JobContextFilter(logging.Filter):
    """Stamps each record with the job fields of the code that logged it (None outside a
    job). On the handler, not a logger, so records propagated from any logger get them; a
    field a caller already set (``extra=``, or a record from another process) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = current_fields()
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, fields.get(name))
        return True


def job_label(record: logging.LogRecord) -> str:
    """``[job=<id> type=echo attempt=1]``, or "" for a line no job caused."""
    job_id = getattr(record, "job_id", None)
    if job_id is None:
        return ""
    parts = [f"job={job_id}"]
    for name, label in (("job_type", "type"), ("attempt", "attempt")):
        value = getattr(record, name, None)
        if value is not None:
            parts.append(f"{label}={value}")
    return f"[{' '.join(parts)}]"


class PlainFormatter(logging.Formatter):
    """The usual text line, with the job's label before the message when a job caused it
    (owner left to the JSON lines: a plain line is for reading)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        label = job_label(record)
        if not label:
            return super().formatMessage(record)
        message = record.message
        record.message = f"{label} {message}"
        try:
            return super().formatMessage(record)
        finally:
            record.message = message  # another handler formats the record afresh


# Record attributes that are presentation, not data: uvicorn's coloured copy of a message.
_NOT_DATA = ("color_message",)


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, the job fields when a job caused the line, ``exc_info`` (text) with an
    exception, and whatever a caller passed in ``extra=``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, *_NOT_DATA],
            **kwargs,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).strftime(TIME_FORMAT)
        super().add_fields(log_data, record, message_dict)
        for name in FIELDS:  # a line no job caused has no job fields, rather than nulls
            if name in log_data and log_data[name] is None:
                del log_data[name]
