"""The operators' dashboard figures (``/admin/jobs/job/dashboard/``), as one JSON document.

Everything comes from the tally's per-minute rows and the partial indexes of the jobs still
waiting or running, never from a scan of the jobs table: the page costs the same with five
thousand jobs or five million. Every figure carries the link to the admin's job list
filtered to the jobs behind it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from jobs import selectors, tally
from jobs.queues import ALL_QUEUES

# Minutes shown -> minutes per point of the chart (at most 360 points).
WINDOWS = {60: 1, 360: 1, 1440: 5}
DEFAULT_WINDOW = 360
SERIES = ("created", "completed", "failed", "cancelled", "retried")
SLOWEST = 8


def job_list(**filters: Any) -> str:
    """The admin's job list filtered by ``filters`` (list filters and field lookups)."""
    query = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items()}
    return f"{reverse('admin:jobs_job_changelist')}?{urlencode(query)}"


def figures(window: int = DEFAULT_WINDOW) -> dict[str, Any]:
    """What the page draws for the last ``window`` minutes (one of ``WINDOWS``)."""
    step = WINDOWS[window]
    now = timezone.now()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=window)
    snap = tally.snapshot(since=start)
    types = _types(snap.per_type, start)
    slowest = sorted(
        (row for row in types if row["p95_s"] is not None), key=lambda row: -row["p95_s"]
    )
    return {
        "generated_at": now.isoformat(),
        "window_minutes": window,
        "windows": list(WINDOWS),
        "step_minutes": step,
        "backlog_events": snap.backlog,
        "list_url": reverse("admin:jobs_job_changelist"),
        "series": _series(snap.per_minute, start, end, step),
        "types": types,
        "slowest": [row["type"] for row in slowest][:SLOWEST],
        **_now(),
    }


def _series(
    per_minute: dict[tuple[datetime, str], int], start: datetime, end: datetime, step: int
) -> dict[str, Any]:
    """Jobs per minute by what happened to them, one point per ``step`` minutes (a point
    of five minutes shows their average per minute)."""
    points = int((end - start).total_seconds() // 60) // step
    counts = {name: [0.0] * points for name in SERIES}
    for (minute, name), n in per_minute.items():
        if name in counts:
            index = int((minute - start).total_seconds() // 60) // step
            if 0 <= index < points:
                counts[name][index] += n / step
    starts = [start + timedelta(minutes=i * step) for i in range(points)]
    # The page links each point to the job list itself (``list_url``, a range of
    # ``created_at`` or ``completed_at``): hundreds of links would weigh more than the data.
    return {"starts": [t.isoformat() for t in starts], "counts": counts}


def _types(per_type: dict[tuple[str, str], tally.Figures], start: datetime) -> list[dict[str, Any]]:
    """Per job type over the window: counts, failure rate, and durations."""
    by_type: dict[str, dict[str, tally.Figures]] = defaultdict(lambda: defaultdict(tally.Figures))
    for (job_type, name), found in per_type.items():
        if job_type:
            by_type[job_type][name].add(found)
    rows = []
    for job_type, events in sorted(by_type.items()):
        ended = tally.Figures()
        for status in ("completed", "failed"):
            ended.add(events[status])
        done, failed = events["completed"].count, events["failed"].count
        rows.append(
            {
                "type": job_type,
                **{name: events[name].count for name in SERIES},
                "failure_rate": round(failed / (done + failed), 4) if done + failed else None,
                "avg_s": round(ended.seconds / ended.timed, 3) if ended.timed else None,
                "p50_s": _rounded(ended.quantile(0.5)),
                "p95_s": _rounded(ended.quantile(0.95)),
                "links": {
                    name: job_list(type=job_type, status__exact=name, completed_at__gte=start)
                    for name in ("completed", "failed", "cancelled")
                }
                | {"created": job_list(type=job_type, created_at__gte=start)},
            }
        )
    return rows


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _now() -> dict[str, Any]:
    """What is true now: queues, jobs not finished, workers."""
    now = selectors.live_state()
    queues = []
    for queue in ALL_QUEUES:
        pending, age = now.waiting.get(queue, (0, 0.0))
        queues.append(
            {
                "queue": queue,
                "depth": None if now.depths is None else now.depths.get(queue, 0),
                "pending": pending,
                "oldest_pending_age_s": age,
                "stale": age > selectors.STALE_PENDING_SECONDS,
                "link": job_list(status__exact="pending", queue__exact=queue),
            }
        )
    unfinished = [
        {"status": status, "jobs": n, "link": job_list(status__exact=status)}
        for status, n in now.unfinished.items()
    ]
    running = [
        {"worker": worker, "jobs": n, "link": job_list(status__exact="running", worker=worker)}
        for worker, n in sorted(now.running.items())
    ]
    return {
        "queues": queues,
        "broker_up": now.depths is not None,
        "unfinished": unfinished,
        "workers": {"online": now.workers, "running": running},
    }
