"""The figures behind ``/metrics`` and the operators' dashboard, counted from the event log.

Every status change writes a ``JobEvent`` in its own transaction, and every webhook POST a
``DeliveryAttempt``: both tables are append-only and numbered. The tally reads them in id
order and adds what it finds to ``TallyMinute`` (per minute, for the dashboard's charts)
and ``TallyTotal`` (Prometheus's counters), so the figures are the same whichever web
process is asked, no process keeps counts that die with it, and nothing on a job's hot
path pays for them. A scrape adds the events not yet tallied (the "tail") on the fly, so
its counts are exact the moment a job's change commits.

Ids are handed out when a row is inserted, not when it commits: a transaction may commit
id 100 after id 101 is visible. So the tally never reads past a *horizon*: the highest id
it saw ``JOBSITE_METRICS_LAG`` seconds ago. Every id under it was inserted before then,
and a status change commits within milliseconds of its insert (an insert that stays
uncommitted longer than the lag is the one thing that would go uncounted).

Runs are serialised by a compare-and-swap on the source's ``TallyCursor``: a second run
at the same moment finds the cursor moved and adds nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Max,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, TruncMinute
from django.utils import timezone

from jobs.models import (
    BUCKET_COLUMNS,
    DURATION_BUCKETS,
    TERMINAL_STATUSES,
    DeliveryAttempt,
    JobEvent,
    JobStatus,
    TallyCursor,
    TallyMinute,
    TallyTotal,
)

# Pipeline throughput: which result key of which job type counts what.
PAGES = {"document_processing": "pages"}
MEDIA_SECONDS = {"media_analysis": "duration_s"}

FINISHED = tuple(sorted(TERMINAL_STATUSES))
WEBHOOK_OUTCOMES = ("delivered", "retry", "gave_up")


@dataclass
class Figures:
    """One group's figures, added up in Python (the rows of a few hundred groups)."""

    count: int = 0
    timed: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    pages: int = 0
    media_seconds: float = 0.0

    def add(self, other: Figures) -> None:
        self.count += other.count
        self.timed += other.timed
        self.seconds += other.seconds
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.pages += other.pages
        self.media_seconds += other.media_seconds

    def columns(self) -> list[Any]:
        """The values of ``COLUMNS``, in order."""
        return [self.count, self.timed, self.seconds, self.pages, self.media_seconds, *self.buckets]

    @classmethod
    def from_columns(cls, values: Any) -> Figures:
        count, timed, seconds, pages, media_seconds, *buckets = values
        return cls(count, timed, seconds, list(buckets), pages, media_seconds)

    def quantile(self, q: float) -> float | None:
        """The duration under which ``q`` of the timed jobs finished, interpolated within
        its bucket as Prometheus's ``histogram_quantile`` does; None without any."""
        if not self.timed:
            return None
        rank = q * self.timed
        low, below = 0.0, 0
        for bound, count in zip(DURATION_BUCKETS, self.buckets, strict=True):
            if count >= rank:
                inside = count - below
                return low + (bound - low) * ((rank - below) / inside if inside else 1.0)
            low, below = float(bound), count
        return float(DURATION_BUCKETS[-1])  # past the last bound: "over an hour"


# The figures' columns of TallyMinute and TallyTotal, in the order of Figures.columns().
COLUMNS = ("count", "timed", "seconds", "pages", "media_seconds", *BUCKET_COLUMNS)


def _event_name() -> Case:
    """What a status change counts as, in SQL; NULL for the ones no metric counts (a
    scheduled job falling due)."""
    return Case(
        When(from_status="", then=Value("created")),
        When(to_status=JobStatus.RUNNING, then=Value("started")),
        When(to_status=JobStatus.RETRYING, then=Value("retried")),
        *(When(to_status=status, then=Value(status)) for status in FINISHED),
        When(
            to_status=JobStatus.PENDING,
            from_status__in=FINISHED,
            then=Value("restarted"),
        ),
        default=Value(None),
        output_field=CharField(),
    )


def _result_number(key_by_type: dict[str, str]) -> Sum:
    """The completed jobs' result value under their type's key (0 for other types).

    Only the listed pipelines' results are read: they write a number there, where a
    custom job type's result could hold anything under the same key."""
    whens = [
        When(
            job__type=job_type,
            to_status=JobStatus.COMPLETED,
            then=Cast(KeyTextTransform(key, "job__result"), FloatField()),
        )
        for job_type, key in key_by_type.items()
    ]
    return Sum(Case(*whens, default=Value(0.0), output_field=FloatField()))


class Seconds(Func):
    """A duration in seconds, as a number: PostgreSQL subtracts timestamps into an
    interval, Django's SQLite functions into microseconds."""

    output_field = FloatField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)")

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        extra.setdefault("template", "(%(expressions)s / 1000000.0)")
        return super().as_sql(compiler, connection, **extra)


def _job_events(after: int, upto: int | None, keys: tuple[str, ...]) -> QuerySet:
    """The status changes with ids in (after, upto], grouped by ``keys`` (of minute,
    type and event), as a query: the tally has the database add it to its tables, a
    scrape reads it."""
    events = JobEvent.objects.filter(id__gt=after, kind=JobEvent.Kind.TRANSITION)
    if upto is not None:
        events = events.filter(id__lte=upto)
    duration = ExpressionWrapper(F("at") - F("job__started_at"), output_field=DurationField())
    timed = Q(to_status__in=FINISHED, job__started_at__isnull=False)
    return (
        events.annotate(duration=duration, event=_event_name())
        .filter(event__isnull=False)
        .values(**_group_by(keys), type=F("job__type"), event=F("event"))
        .annotate(
            count=Count("id"),
            timed=Count("id", filter=timed),
            seconds=Coalesce(Seconds(Sum("duration", filter=timed)), Value(0.0)),
            pages=Coalesce(_result_number(PAGES), Value(0.0)),
            media_seconds=Coalesce(_result_number(MEDIA_SECONDS), Value(0.0)),
            **{
                column: Count("id", filter=timed & Q(duration__lte=timedelta(seconds=bound)))
                for column, bound in zip(BUCKET_COLUMNS, DURATION_BUCKETS, strict=True)
            },
        )
        .values(*keys, *COLUMNS)
        .order_by()
    )


def _attempts(after: int, upto: int | None, keys: tuple[str, ...]) -> QuerySet:
    """Webhook POSTs with ids in (after, upto] by outcome: ``delivered`` (a 2xx),
    ``retry`` (another attempt is scheduled) or ``gave_up`` (none will be)."""
    attempts = DeliveryAttempt.objects.filter(id__gt=after)
    if upto is not None:
        attempts = attempts.filter(id__lte=upto)
    outcome = Case(
        When(status_code__gte=200, status_code__lt=300, then=Value("webhook_delivered")),
        When(next_attempt_at__isnull=False, then=Value("webhook_retry")),
        default=Value("webhook_gave_up"),
        output_field=CharField(),
    )
    zero = {c: Value(0) for c in COLUMNS if c not in ("count", "seconds", "media_seconds")}
    return (
        attempts.values(**_group_by(keys), type=Value(""), event=outcome)
        .annotate(
            count=Count("id"),
            seconds=Value(0.0),
            media_seconds=Value(0.0),
            **zero,
        )
        .values(*keys, *COLUMNS)
        .order_by()
    )


def _group_by(keys: tuple[str, ...]) -> dict[str, Any]:
    return {"minute": TruncMinute("at")} if "minute" in keys else {}


@dataclass(frozen=True)
class Source:
    name: str
    model: type[JobEvent] | type[DeliveryAttempt]
    rows: Any  # (after, upto, keys) -> QuerySet


SOURCES = (
    Source("job_events", JobEvent, _job_events),
    Source("webhook_attempts", DeliveryAttempt, _attempts),
)

MINUTE_KEY = ("minute", "type", "event")
TOTAL_KEY = ("type", "event")


def _max_id(source: Source) -> int:
    return source.model.objects.aggregate(top=Max("id"))["top"] or 0


def _cursor(source: Source) -> TallyCursor:
    cursor, _ = TallyCursor.objects.get_or_create(source=source.name)
    return cursor


def roll_up(*, time_budget: float = 5.0, chunk: int | None = None) -> int:
    """Tally what the horizons allow, in transactions of ``chunk`` ids at most, for up to
    ``time_budget`` seconds (a backlog, say after an upgrade, is read over several runs);
    then move each horizon on. Returns how many ids were read."""
    chunk = chunk or settings.JOBSITE_METRICS_CHUNK
    lag = timedelta(seconds=settings.JOBSITE_METRICS_LAG)
    started = time.monotonic()
    read = 0
    for source in SOURCES:
        cursor = _cursor(source)
        ripe = cursor.horizon_at is not None and cursor.horizon_at <= timezone.now() - lag
        while ripe and cursor.last_id < cursor.horizon_id:
            upto = min(cursor.horizon_id, cursor.last_id + chunk)
            if not _add(source, cursor.last_id, upto):
                break  # another run is at it
            read += upto - cursor.last_id
            cursor.last_id = upto
            if time.monotonic() - started > time_budget:
                return read
        if cursor.last_id >= cursor.horizon_id:
            TallyCursor.objects.filter(
                source=source.name, last_id=cursor.last_id, horizon_id=cursor.horizon_id
            ).update(horizon_id=_max_id(source), horizon_at=timezone.now())
    return read


def _add(source: Source, after: int, upto: int) -> bool:
    """Add the ids in (after, upto] to the tables, if the cursor is still at ``after``."""
    with transaction.atomic():
        # The compare-and-swap comes first: it takes the row's lock (PostgreSQL) or the
        # database's write lock (SQLite) before anything is read.
        moved = TallyCursor.objects.filter(source=source.name, last_id=after).update(last_id=upto)
        if not moved:
            return False
        _upsert(TallyMinute, MINUTE_KEY, source.rows(after, upto, MINUTE_KEY))
        _upsert(TallyTotal, TOTAL_KEY, source.rows(after, upto, TOTAL_KEY))
    return True


def _upsert(
    model: type[TallyMinute] | type[TallyTotal], key: tuple[str, ...], rows: QuerySet
) -> None:
    """Add what ``rows`` (a grouped query) counts to ``model``'s rows with the same key,
    inside the database: one INSERT ... SELECT ... ON CONFLICT DO UPDATE that adds,
    whatever the size of the chunk (PostgreSQL and SQLite alike)."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = [quote(name) for name in (*key, *COLUMNS)]
    adds = ", ".join(f"{n} = {table}.{n} + excluded.{n}" for n in names[len(key) :])
    select, params = rows.query.sql_with_params()
    # Names from the models; the values are the query's parameters. (SQLite needs the
    # WHERE to tell the upsert's ON from a join's.)
    statement = (
        f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608
        f"SELECT {', '.join(names)} FROM ({select}) AS grouped WHERE true "
        f"ON CONFLICT ({', '.join(names[: len(key)])}) DO UPDATE SET {adds}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


# --- reading -------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """The figures as of one moment: the tally's rows plus the tail not yet tallied."""

    # Since counting began, by job type ("" for webhook attempts) and event.
    totals: dict[tuple[str, str], Figures]
    # Since the ``since`` asked for: jobs per minute by event, and figures by type and event.
    per_minute: dict[tuple[datetime, str], int]
    per_type: dict[tuple[str, str], Figures]
    # Ids past the tallied ones that the snapshot could not count (a backlog too long to
    # read on the fly); 0 when the figures are exact.
    backlog: int


def _figures(row: dict[str, Any]) -> Figures:
    return Figures.from_columns([row[column] or 0 for column in COLUMNS])


def snapshot(*, since: datetime | None = None) -> Snapshot:
    """The totals, and given ``since`` the figures from then on, read in one snapshot of
    the database so a tally run committing meanwhile is counted once, not twice. The
    tallied rows are summed by the database: a day of minutes is one short query."""
    outermost = not connection.in_atomic_block
    totals: dict[tuple[str, str], Figures] = defaultdict(Figures)
    per_minute: dict[tuple[datetime, str], int] = defaultdict(int)
    per_type: dict[tuple[str, str], Figures] = defaultdict(Figures)
    backlog = 0
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            connection.cursor().execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursors = {c.source: c.last_id for c in TallyCursor.objects.all()}
        for row in TallyTotal.objects.values(*TOTAL_KEY, *COLUMNS):
            totals[(row["type"], row["event"])].add(_figures(row))
        if since is not None:
            window = TallyMinute.objects.filter(minute__gte=since)
            for row in window.exclude(type="").values("minute", "event").annotate(n=Sum("count")):
                per_minute[(row["minute"], row["event"])] += row["n"]
            sums = {column: Sum(column) for column in COLUMNS}
            for row in window.values(*TOTAL_KEY).annotate(**sums).order_by():
                per_type[(row["type"], row["event"])].add(_figures(row))
        for source in SOURCES:
            after = cursors.get(source.name, 0)
            pending = _max_id(source) - after
            if pending > settings.JOBSITE_METRICS_TAIL_MAX:
                backlog += pending
                continue
            for row in source.rows(after, None, MINUTE_KEY):
                figures = _figures(row)
                key = (row["type"], row["event"])
                totals[key].add(figures)
                minute = _aware(row["minute"])
                if since is not None and minute >= since:
                    per_type[key].add(figures)
                    if row["type"]:
                        per_minute[(minute, row["event"])] += figures.count
    return Snapshot(
        totals=dict(totals), per_minute=dict(per_minute), per_type=dict(per_type), backlog=backlog
    )


def _aware(minute: Any) -> datetime:
    """A truncated minute as the query gave it (SQLite: text) as an aware datetime."""
    if isinstance(minute, str):
        minute = datetime.fromisoformat(minute)
    return minute if timezone.is_aware(minute) else timezone.make_aware(minute, UTC)


def purge_minutes(now: datetime) -> int:
    """Delete the per-minute rows past ``JOBSITE_METRICS_MINUTES_DAYS`` (totals stay)."""
    cutoff = now - timedelta(days=settings.JOBSITE_METRICS_MINUTES_DAYS)
    deleted, _ = TallyMinute.objects.filter(minute__lt=cutoff).delete()
    return deleted
