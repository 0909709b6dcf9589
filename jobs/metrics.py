"""``GET /metrics``: the platform's figures in Prometheus's text format.

Every figure is read at scrape time from the database (``jobs.tally``'s counts, the
waiting jobs' partial indexes) and the broker, through a collector of the official client
library: any web process gives the whole cluster's figures, however many serve the API
and wherever the workers run, and a restarted process loses nothing (the library's
multi-process mode would only add up the processes of one host, and the jobs finish on
the workers' hosts).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Iterator

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from jobs import selectors, tally
from jobs.api.errors import error_response
from jobs.queues import ALL_QUEUES

log = logging.getLogger(__name__)

# Repeated scrapes within this many seconds (several Prometheus servers, a dashboard
# open in many tabs) share one reading of the database.
CACHE_SECONDS = 1.0
CACHE_KEY = "jobsite:metrics"

COUNTERS = {
    # metric name (without _total): (tallied event, help)
    "jobsite_jobs_created": ("created", "Jobs created, by type."),
    "jobsite_jobs_started": ("started", "Attempts started, by job type."),
    "jobsite_jobs_retried": ("retried", "Attempts that failed and were retried, by job type."),
    "jobsite_jobs_restarted": ("restarted", "Failed or cancelled jobs restarted, by type."),
}


class TallyCollector:
    """The figures as one snapshot of the database reads them (no state of its own)."""

    def collect(self) -> Iterator[Metric]:
        snap = tally.snapshot()
        by_event: dict[str, dict[str, tally.Figures]] = {}
        for (job_type, event), figures in snap.totals.items():
            by_event.setdefault(event, {})[job_type] = figures
        for name, (event, help_text) in COUNTERS.items():
            family = CounterMetricFamily(name, help_text, labels=["type"])
            for job_type, figures in sorted(by_event.get(event, {}).items()):
                family.add_metric([job_type], figures.count)
            yield family
        finished = CounterMetricFamily(
            "jobsite_jobs_finished",
            "Jobs that reached a final status, by type and status.",
            labels=["type", "status"],
        )
        durations = HistogramMetricFamily(
            "jobsite_job_duration_seconds",
            "Seconds from a finished job's first start to its end (jobs that never started "
            "are not in it), by type and status.",
            labels=["type", "status"],
        )
        pages = CounterMetricFamily(
            "jobsite_pipeline_pages", "Document pages processed, by job type.", labels=["type"]
        )
        media = CounterMetricFamily(
            "jobsite_pipeline_media_seconds",
            "Seconds of audio and video analysed, by job type.",
            labels=["type"],
        )
        for status in tally.FINISHED:
            for job_type, figures in sorted(by_event.get(status, {}).items()):
                finished.add_metric([job_type, status], figures.count)
                bounds = [
                    (_bound(b), n)
                    for b, n in zip(tally.DURATION_BUCKETS, figures.buckets, strict=True)
                ]
                durations.add_metric(
                    [job_type, status], [*bounds, ("+Inf", figures.timed)], figures.seconds
                )
        for job_type, figures in sorted(by_event.get("completed", {}).items()):
            if job_type in tally.PAGES:
                pages.add_metric([job_type], figures.pages)
            if job_type in tally.MEDIA_SECONDS:
                media.add_metric([job_type], figures.media_seconds)
        yield from (finished, durations, pages, media)
        webhooks = CounterMetricFamily(
            "jobsite_webhook_attempts",
            "Webhook POSTs, by outcome: delivered (2xx), retry (another attempt is due), "
            "gave_up (none will be).",
            labels=["outcome"],
        )
        for outcome in tally.WEBHOOK_OUTCOMES:
            figures = by_event.get(f"webhook_{outcome}", {}).get("")
            webhooks.add_metric([outcome], figures.count if figures else 0)
        yield webhooks
        yield GaugeMetricFamily(
            "jobsite_metrics_backlog_events",
            "Events not yet in the counts above (a backlog being tallied); 0: exact.",
            value=snap.backlog,
        )
        yield from _live_gauges()


def _bound(seconds: float) -> str:
    return f"{float(seconds)}"


def _live_gauges() -> Iterator[Metric]:
    """What is true now: jobs waiting and running, the queues, the workers."""
    now = selectors.live_state()
    in_flight = GaugeMetricFamily(
        "jobsite_jobs", "Jobs not finished, by status.", labels=["status"]
    )
    for status, n in now.unfinished.items():
        in_flight.add_metric([status], n)
    yield in_flight
    depth = GaugeMetricFamily(
        "jobsite_queue_depth", "Messages waiting in the broker, by queue.", labels=["queue"]
    )
    pending = GaugeMetricFamily(
        "jobsite_queue_pending_jobs", "Jobs pending, by queue.", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        "jobsite_queue_oldest_pending_age_seconds",
        "Age of the oldest pending job, by queue (0: none pending).",
        labels=["queue"],
    )
    for queue in ALL_QUEUES:
        if now.depths is not None:
            depth.add_metric([queue], now.depths.get(queue, 0))
        count, age = now.waiting.get(queue, (0, 0.0))
        pending.add_metric([queue], count)
        oldest.add_metric([queue], age)
    yield from (depth, pending, oldest)
    yield GaugeMetricFamily(
        "jobsite_broker_up",
        "1 if the broker answered this scrape.",
        value=int(now.depths is not None),
    )
    online = GaugeMetricFamily(
        "jobsite_workers_online", "Celery workers answering a ping (absent: broker down)."
    )
    if now.workers is not None:
        online.add_metric([], now.workers)
    yield online
    running = GaugeMetricFamily(
        "jobsite_worker_running_jobs", "Jobs running, by worker.", labels=["worker"]
    )
    for worker, n in now.running.items():
        running.add_metric([worker or "unknown"], n)
    yield running


def render() -> bytes:
    """The exposition text, shared by the scrapes of one second."""
    try:
        cached = cache.get(CACHE_KEY)
    except Exception:
        cached = None
    if cached is not None:
        return cached
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TallyCollector())
    body = generate_latest(registry)
    # A cache that is down costs a reading per scrape, nothing more.
    with contextlib.suppress(Exception):
        cache.set(CACHE_KEY, body, CACHE_SECONDS)
    return body


def allowed(request: HttpRequest) -> bool | None:
    """True to serve, False to refuse (401), None when metrics are off (404)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    token = settings.JOBSITE_METRICS_TOKEN
    if not token:
        return None
    if token == "off":  # noqa: S105 - the word that switches the token off
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


# A scrape carries a token, not a session cookie: CSRF has nothing to protect here.
@csrf_exempt
def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        response = error_response(405, "method_not_allowed", "GET /metrics only")
        response["Allow"] = "GET, HEAD"
        return response
    verdict = allowed(request)
    if verdict is None:
        return error_response(
            404,
            "metrics_off",
            "Metrics are off: set JOBSITE_METRICS_TOKEN to a token (scrapes send it as a "
            "Bearer token), or to 'off' to serve them to anyone",
        )
    if not verdict:
        response = error_response(
            401, "not_authenticated", "GET /metrics needs 'Authorization: Bearer <token>'"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    try:
        body = render()
    except (OperationalError, InterfaceError) as exc:
        log.warning("GET /metrics: database unavailable: %s", exc)
        response = error_response(503, "database_unavailable", "The database is unavailable")
        response["Retry-After"] = "5"
        return response
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
