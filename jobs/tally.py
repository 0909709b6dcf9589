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
from datetime import datetime, timedelta
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
    Max,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncMinute
from django.utils import timezone

from jobs.models import (
    TERMINAL_STATUSES,
    DeliveryAttempt,
    JobEvent,
    JobStatus,
    TallyCursor,
    TallyMinute,
    TallyTotal,
)

# Upper bounds (seconds) of the job duration histogram's buckets: from an echo job's
# milliseconds to an hour of media.
DURATION_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip

# Pipeline throughput: which result key of which job type counts what.
PAGES = {"document_processing": "pages"}
MEDIA_SECONDS = {"media_analysis": "duration_s"}

FINISHED = tuple(sorted(TERMINAL_STATUSES))
JOB_EVENTS = ("created", "started", "retried", "restarted", *FINISHED)
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

    def add(self, other: Figures | TallyMinute | TallyTotal) -> None:
        self.count += other.count
        self.timed += other.timed
        self.seconds += other.seconds
        theirs = _padded(list(other.buckets or []))
        self.buckets = [a + b for a, b in zip(self.buckets, theirs, strict=True)]
        self.pages += other.pages
        self.media_seconds += other.media_seconds

    def values(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "timed": self.timed,
            "seconds": self.seconds,
            "buckets": self.buckets,
            "pages": self.pages,
            "media_seconds": self.media_seconds,
        }

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


def _padded(buckets: list[int]) -> list[int]:
    """A row's buckets, padded or cut to the length of ``DURATION_BUCKETS``."""
    return (buckets + [0] * len(DURATION_BUCKETS))[: len(DURATION_BUCKETS)]


# (minute, type, event) -> figures
Groups = dict[tuple[datetime, str, str], Figures]


def _event_name(from_status: str, to_status: str) -> str | None:
    """What a status change counts as; None for the ones no metric counts (a scheduled
    job falling due)."""
    if not from_status:
        return "created"
    if to_status == JobStatus.RUNNING:
        return "started"
    if to_status == JobStatus.RETRYING:
        return "retried"
    if to_status in TERMINAL_STATUSES:
        return str(to_status)
    if to_status == JobStatus.PENDING and from_status in TERMINAL_STATUSES:
        return "restarted"
    return None


def _result_number(key_by_type: dict[str, str]) -> Any:
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


def _job_event_groups(after: int, upto: int | None) -> Groups:
    """The status changes with ids in (after, upto], grouped by minute, type and change."""
    events = JobEvent.objects.filter(id__gt=after, kind=JobEvent.Kind.TRANSITION)
    if upto is not None:
        events = events.filter(id__lte=upto)
    duration = ExpressionWrapper(F("at") - F("job__started_at"), output_field=DurationField())
    timed = Q(to_status__in=FINISHED, job__started_at__isnull=False)
    rows = (
        events.annotate(duration=duration)
        .values("from_status", "to_status", minute=TruncMinute("at"), job_type=F("job__type"))
        .annotate(
            count=Count("id"),
            timed=Count("id", filter=timed),
            seconds=Sum("duration", filter=timed),
            pages=_result_number(PAGES),
            media_seconds=_result_number(MEDIA_SECONDS),
            **{
                f"le{i}": Count("id", filter=timed & Q(duration__lte=timedelta(seconds=bound)))
                for i, bound in enumerate(DURATION_BUCKETS)
            },
        )
        .order_by()
    )
    groups: Groups = defaultdict(Figures)
    for row in rows:
        name = _event_name(row["from_status"], row["to_status"])
        if name is None:
            continue
        seconds = row["seconds"]
        groups[(row["minute"], row["job_type"], name)].add(
            Figures(
                count=row["count"],
                timed=row["timed"],
                seconds=seconds.total_seconds() if seconds is not None else 0.0,
                buckets=[row[f"le{i}"] for i in range(len(DURATION_BUCKETS))],
                pages=round(row["pages"] or 0),
                media_seconds=float(row["media_seconds"] or 0.0),
            )
        )
    return groups


def _attempt_groups(after: int, upto: int | None) -> Groups:
    """Webhook POSTs with ids in (after, upto], by minute and outcome: ``delivered`` (a
    2xx), ``retry`` (another attempt is scheduled) or ``gave_up`` (none will be)."""
    attempts = DeliveryAttempt.objects.filter(id__gt=after)
    if upto is not None:
        attempts = attempts.filter(id__lte=upto)
    outcome = Case(
        When(status_code__gte=200, status_code__lt=300, then=Value("delivered")),
        When(next_attempt_at__isnull=False, then=Value("retry")),
        default=Value("gave_up"),
        output_field=CharField(),
    )
    rows = (
        attempts.values(minute=TruncMinute("at"), outcome=outcome)
        .annotate(count=Count("id"))
        .order_by()
    )
    groups: Groups = defaultdict(Figures)
    for row in rows:
        groups[(row["minute"], "", f"webhook_{row['outcome']}")].add(Figures(count=row["count"]))
    return groups


@dataclass(frozen=True)
class Source:
    name: str
    model: type[JobEvent] | type[DeliveryAttempt]
    groups: Any  # (after, upto) -> Groups


SOURCES = (
    Source("job_events", JobEvent, _job_event_groups),
    Source("webhook_attempts", DeliveryAttempt, _attempt_groups),
)


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
        groups = source.groups(after, upto)
        _merge(TallyMinute, groups, ("minute", "type", "event"))
        totals: dict[tuple[str, str], Figures] = defaultdict(Figures)
        for (_, job_type, name), figures in groups.items():
            totals[(job_type, name)].add(figures)
        _merge(TallyTotal, totals, ("type", "event"))
    return True


def _merge(model: type[TallyMinute] | type[TallyTotal], groups: dict, key: tuple[str, ...]) -> None:
    """Add ``groups`` to the rows with the same key (read, added, written back: the
    cursor's lock keeps any other run out meanwhile)."""
    if not groups:
        return
    wanted = Q()
    for values in groups:
        wanted |= Q(**dict(zip(key, values, strict=True)))
    merged: dict[tuple, Figures] = defaultdict(Figures)
    for row in model.objects.filter(wanted):
        merged[tuple(getattr(row, name) for name in key)].add(row)
    for values, figures in groups.items():
        merged[values].add(figures)
    rows = [model(**dict(zip(key, k, strict=True)), **f.values()) for k, f in merged.items()]
    model.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=list(key),
        update_fields=list(Figures().values()),
        batch_size=500,
    )


# --- reading -------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Totals as of one moment: the tally's rows plus the tail not yet tallied."""

    totals: dict[tuple[str, str], Figures]
    # Per minute since the ``since`` asked for (tallied rows and tail alike).
    minutes: Groups
    # Ids past the tallied ones that the snapshot could not count (a backlog too long to
    # read on the fly); 0 when the figures are exact.
    backlog: int


def snapshot(*, since: datetime | None = None) -> Snapshot:
    """Totals (and, given ``since``, the figures per minute from then on), read in one
    snapshot of the database so a tally run committing meanwhile is counted once, not
    twice."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            connection.cursor().execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursors = {c.source: c.last_id for c in TallyCursor.objects.all()}
        totals: dict[tuple[str, str], Figures] = defaultdict(Figures)
        for row in TallyTotal.objects.all():
            totals[(row.type, row.event)].add(row)
        minutes: Groups = defaultdict(Figures)
        if since is not None:
            rows = TallyMinute.objects.filter(minute__gte=since).values_list(
                "minute", "type", "event", *Figures().values()
            )
            for minute, job_type, name, *figures in rows:
                minutes[(minute, job_type, name)].add(Figures(*figures))
        backlog = 0
        for source in SOURCES:
            after = cursors.get(source.name, 0)
            pending = _max_id(source) - after
            if pending > settings.JOBSITE_METRICS_TAIL_MAX:
                backlog += pending
                continue
            for (minute, job_type, name), figures in source.groups(after, None).items():
                totals[(job_type, name)].add(figures)
                if since is not None and minute >= since:
                    minutes[(minute, job_type, name)].add(figures)
    return Snapshot(totals=dict(totals), minutes=dict(minutes), backlog=backlog)


def purge_minutes(now: datetime) -> int:
    """Delete the per-minute rows past ``JOBSITE_METRICS_MINUTES_DAYS`` (totals stay)."""
    cutoff = now - timedelta(days=settings.JOBSITE_METRICS_MINUTES_DAYS)
    deleted, _ = TallyMinute.objects.filter(minute__lt=cutoff).delete()
    return deleted
