"""Reads: what a caller may see of jobs, and the queue's health."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import psutil
from django.core.cache import cache
from django.db import close_old_connections, connection
from django.db.models import Count, Min, QuerySet, Sum
from django.utils import timezone

from jobs import broker
from jobs.auth import InvalidApiKey, api_key_for, failure_guard, live_token_holder
from jobs.broker import bounded, queue_depths
from jobs.errors import NotFound
from jobs.models import TERMINAL_STATUSES, Batch, Delivery, Job, JobArchive, JobEvent, JobStatus
from jobs.queues import ALL_QUEUES
from jobsite.celery import app

WORKERS_CACHE_KEY = "jobsite:active-workers"
WORKERS_CACHE_SECONDS = 5


def job_list(*, owner: Any) -> QuerySet[Job]:
    return Job.objects.filter(owner=owner)


def _job(job_id: Any, **scope: Any) -> Job:
    try:
        pk = uuid.UUID(str(job_id))
    except ValueError:
        raise NotFound("Job not found") from None
    values = {"pk": pk, **scope}
    if set(scope) <= set(_SCOPES) and None not in scope.values():
        job = _CompiledLookup.of(tuple(sorted(scope))).get(values)
    else:
        job = next(iter(Job.objects.filter(pk=pk, **scope).order_by()[:1]), None)
    if job is None:
        raise NotFound("Job not found")
    return job


# How each lookup value of ``_job`` goes into its SQL, as the ORM would prepare it.
_SCOPES: dict[str, Any] = {
    "pk": lambda value: Job._meta.pk.get_db_prep_value(value, connection),
    "owner": lambda value: getattr(value, "pk", value),
    "type": str,
}


class _CompiledLookup:
    """One job by primary key and a scope, with the statement the ORM compiles for it
    compiled once per process: building it (and mapping its columns back) was most of a
    status request's CPU, for what is one index lookup. The row becomes a model instance
    as the ORM would make it (``Model.from_db``, the fields' converters)."""

    _cache: ClassVar[dict[tuple[str, ...], _CompiledLookup]] = {}

    def __init__(self, scope: tuple[str, ...]) -> None:
        self.names = sorted(("pk", *scope))  # Q() orders keyword lookups by name
        dummy = {"pk": uuid.UUID(int=0), "owner": 0, "type": ""}
        query = Job.objects.filter(**{name: dummy[name] for name in self.names}).order_by()
        compiler = query[:1].query.get_compiler(using="default")
        self.sql, params = compiler.as_sql()
        assert len(params) == len(self.names), (self.sql, params)
        columns = [column for column, _, _ in compiler.select]
        self.attnames = [column.target.attname for column in columns]
        self.converters = compiler.get_converters(columns)

    @classmethod
    def of(cls, scope: tuple[str, ...]) -> _CompiledLookup:
        key = (connection.vendor, *scope)
        found = cls._cache.get(key)
        if found is None:
            found = cls._cache[key] = cls(scope)
        return found

    def get(self, values: dict[str, Any]) -> Job | None:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [_SCOPES[name](values[name]) for name in self.names])
            row = cursor.fetchone()
        if row is None:
            return None
        if self.converters:  # as SQLCompiler.apply_converters, with this thread's connection
            row = list(row)
            for position, (converters, expression) in self.converters.items():
                for converter in converters:
                    row[position] = converter(row[position], expression, connection)
        return Job.from_db("default", self.attnames, row)


def job_get(*, owner: Any, job_id: Any) -> Job:
    """The caller's job, or NotFound: another owner's job does not exist for them."""
    return _job(job_id, owner=owner)


def job_archive_get(*, owner: Any, job_id: Any) -> JobArchive:
    """What stays of the caller's purged job, or NotFound (another owner's, or none)."""
    try:
        pk = uuid.UUID(str(job_id))
    except ValueError:
        raise NotFound("Job not found") from None
    found = JobArchive.objects.filter(pk=pk, owner=owner).first() if owner is not None else None
    if found is None:
        raise NotFound("Job not found")
    return found


def task_job_get(*, job_type: str, job_id: Any) -> Job:
    """A job that code enqueued as a task of ``job_type`` (no owner), or NotFound."""
    return _job(job_id, type=job_type, owner=None)


def job_watchable(*, user: Any, job_id: Any) -> Job:
    """A job ``user`` may watch live: their own, or any for staff; else NotFound."""
    return _job(job_id) if user.is_staff else job_get(owner=user, job_id=job_id)


def live_token_target(*, token: str, job_id: Any) -> tuple[Job, str]:
    """The job a live link opens, and whose link it is (``key:<pk>`` or ``user:<pk>``):
    a key's link sees what the key sees, while the key is active; a user's link (minted
    for a browser session) what the user may watch, while the user is active."""
    user, principal = live_token_holder(token, job_id)
    if principal.startswith("key:"):
        return job_get(owner=user, job_id=job_id), principal
    return job_watchable(user=user, job_id=job_id), principal


def live_target(
    *, key: str | None, token: str | None, job_id: str, address: str | None = None
) -> tuple[Job, str]:
    """The job a watcher may follow, and whose budget it counts against. Failed keys and
    tokens count against the client's ``address`` (``jobs.auth.failure_guard``).

    Runs in a pool thread; the connection goes back before the client starts waiting.
    """
    try:
        if key is not None:
            with failure_guard(address):
                api_key = api_key_for(key)
            return job_get(owner=api_key.user, job_id=job_id), f"key:{api_key.pk}"
        if token is not None:
            with failure_guard(address):
                return live_token_target(token=token, job_id=job_id)
        raise InvalidApiKey("Authentication required: an API key or a live token")
    finally:
        close_old_connections()


def live_reload(job_id: Any) -> Job:
    try:
        return Job.objects.get(pk=job_id)
    finally:
        close_old_connections()


def job_events(*, job: Job) -> QuerySet[JobEvent]:
    return job.events.order_by("id")


def job_deliveries(*, job: Job) -> QuerySet[Delivery]:
    """A job's webhook deliveries, oldest first, each with its attempts (two queries)."""
    return Delivery.objects.filter(job=job).prefetch_related("attempts_made").order_by("id")


def batch_list(*, owner: Any) -> QuerySet[Batch]:
    return Batch.objects.filter(owner=owner)


def batch_get(*, owner: Any, batch_id: Any) -> Batch:
    try:
        pk = uuid.UUID(str(batch_id))
    except ValueError:
        raise NotFound("Batch not found") from None
    batch = Batch.objects.filter(pk=pk, owner=owner).first()
    if batch is None:
        raise NotFound("Batch not found")
    return batch


def batch_counts(*, batch: Batch) -> tuple[dict[str, int], float]:
    """Its jobs by status (every status, zeros included) and its progress in percent: an
    ended job counts as 100, whatever it reached. One indexed GROUP BY."""
    counts = dict.fromkeys(JobStatus.values, 0)
    progress = 0.0
    rows = (
        Job.objects.filter(batch=batch)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"), p=Sum("progress"))
    )
    for status, n, summed in rows:
        counts[status] = n
        progress += 100.0 * n if status in TERMINAL_STATUSES else float(summed or 0.0)
    total = sum(counts.values())
    return counts, round(progress / total, 2) if total else 100.0


def batch_deliveries(*, batch: Batch) -> QuerySet[Delivery]:
    return Delivery.objects.filter(batch=batch).prefetch_related("attempts_made").order_by("id")


def job_event_timeline(*, job: Job, limit: int = 200) -> list[JobEvent]:
    """The latest events, oldest first (a page shows a few hundred at most)."""
    return list(reversed(job.events.order_by("-id")[:limit]))


def active_workers() -> int | None:
    """Workers answering a ping, cached so a storm of stats calls costs workers nothing."""
    try:
        cached = cache.get(WORKERS_CACHE_KEY)
    except Exception:
        cached = None
    if cached is not None:
        return cached
    if broker.down():
        return None
    try:
        with app.connection_for_write(transport_options=bounded()) as connection:
            replies = app.control.ping(timeout=0.5, connection=connection) or []
    except Exception as exc:
        broker.failed(exc)
        return None
    count = len(replies)
    with contextlib.suppress(Exception):
        cache.set(WORKERS_CACHE_KEY, count, WORKERS_CACHE_SECONDS)
    return count


# A queue whose oldest pending job waited longer is stale: queue stats call the queues
# degraded, the dashboard draws them red.
STALE_PENDING_SECONDS = 300


def queue_stats(*, user: Any) -> dict[str, Any]:
    """Counts by status (the caller's own jobs; staff see all), broker depth per queue,
    the age of the oldest pending job per queue, and worker and host facts."""
    jobs = Job.objects.all() if user.is_staff else Job.objects.filter(owner=user)
    counts = {row["status"]: row["n"] for row in jobs.values("status").annotate(n=Count("pk"))}
    oldest = {queue: age for queue, (_, age) in pending_by_queue(jobs).items()}
    depths = queue_depths(list(ALL_QUEUES))
    workers = active_workers()
    reasons = []
    if depths is None:
        reasons.append("broker unreachable")
    if workers == 0:
        reasons.append("no worker answers")
    stale = [queue for queue, age in oldest.items() if age > STALE_PENDING_SECONDS]
    if stale:
        reasons.append(f"jobs waiting over 5 minutes in: {', '.join(sorted(stale))}")
    status = "unhealthy" if depths is None or workers == 0 else "degraded" if reasons else "healthy"
    cpu = psutil.cpu_percent(interval=None)
    memory = psutil.Process().memory_info().rss / (1024 * 1024)
    return {
        **{f"{s}_jobs": counts.get(s, 0) for s in JobStatus.values},
        "total_jobs": sum(counts.values()),
        "queue_type": app.connection_for_read().transport_cls,
        "cache_size": sum((depths or {}).values()),
        "cpu_usage_percent": cpu,
        "memory_usage_mb": round(memory, 1),
        "active_workers": workers,
        "queues": {
            queue: {
                "depth": None if depths is None else depths.get(queue, 0),
                "oldest_pending_age_s": oldest.get(queue),
            }
            for queue in ALL_QUEUES
        },
        "queue_health": {
            "status": status,
            "reasons": reasons,
            "resource_utilization": "high" if cpu > 90 else "optimal",
            "limit_enforcement": "active",
        },
    }


def unfinished_counts() -> dict[str, int]:
    """Jobs in each status that is not final, each counted on its own partial index (a
    count by status over the whole table would read every finished job too)."""
    waiting = (JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.RETRYING)
    return {str(status): Job.objects.filter(status=status).count() for status in waiting}


def pending_by_queue(jobs: QuerySet[Job] | None = None) -> dict[str, tuple[int, float]]:
    """Per queue: pending jobs (of ``jobs``: all by default) and the oldest one's age in
    seconds (index job_pending)."""
    now = timezone.now()
    rows = (
        (Job.objects.all() if jobs is None else jobs)
        .filter(status=JobStatus.PENDING)
        .values("queue")
        .annotate(n=Count("pk"), oldest=Min("created_at"))
        .order_by()
    )
    return {
        row["queue"]: (row["n"], round(max(0.0, (now - row["oldest"]).total_seconds()), 3))
        for row in rows
    }


def running_by_worker() -> dict[str, int]:
    """Running jobs per worker (index job_running: as many rows as jobs run at once)."""
    rows = Job.objects.filter(status=JobStatus.RUNNING).values("worker").annotate(n=Count("pk"))
    return {row["worker"]: row["n"] for row in rows.order_by()}


@dataclass(frozen=True)
class LiveState:
    """What is true now, for ``/metrics`` and the dashboard alike: jobs not finished by
    status, pending jobs and oldest age per queue, broker depths (None: broker down),
    workers answering a ping (None: unknown), running jobs per worker."""

    unfinished: dict[str, int]
    waiting: dict[str, tuple[int, float]]
    depths: dict[str, int] | None
    workers: int | None
    running: dict[str, int]


def live_state() -> LiveState:
    return LiveState(
        unfinished=unfinished_counts(),
        waiting=pending_by_queue(),
        depths=queue_depths(list(ALL_QUEUES)),
        workers=active_workers(),
        running=running_by_worker(),
    )
