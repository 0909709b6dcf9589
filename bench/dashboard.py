"""The operators' dashboard and ``GET /metrics`` on a table of 5,000,000 jobs (PostgreSQL),
beside the same figures computed straight from the jobs table (the baseline), and beside
both on a table of 10,000 jobs: what it costs to show them as the table grows.

The jobs ended over the last 30 days (three events each: created, started, ended; a
retry event for some failures), five job types with durations of their own; the last six
hours have a busier, uneven rate and a burst of failures, so the charts have a shape.
First the tally reads every event (the cost of an upgrade of a full database), then each
figure is asked for 20 times over HTTP (one gunicorn process, a signed-in staff member)
and in this process; the baseline's SQL runs here.

    python -m bench.dashboard [--sizes 10000 5000000] [--screenshot docs/images/dashboard.png]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.harness import Setup, checkpoint, free_port, machine

TYPES = "ARRAY['echo','document_processing','media_analysis','web_extraction','batch_operation']"
# Per type: a typical duration (seconds) and its spread, as a multiplier of random().
DURATIONS = "ARRAY[0.05, 4.0, 45.0, 1.5, 12.0]"

# Both fills write every column of a job row, in this order.
INSERT_JOBS = """
INSERT INTO jobs_job (
    id, type, params, status, progress, current_step, result, error_code, error_message,
    error_traceback, attempts, max_retries, retry_base, priority, queue, time_limit, owner_id,
    request_fingerprint, callback_url, input_file, celery_task_id, worker, created_at,
    started_at, completed_at, updated_at)"""

FILL_JOBS = f"""
{INSERT_JOBS}
SELECT gen_random_uuid(), ({TYPES})[t], '{{}}', status, 100, '',
    CASE t WHEN 2 THEN jsonb_build_object('pages', 1 + (d * 30)::int)
           WHEN 3 THEN jsonb_build_object('duration_s', round((d * 600)::numeric, 2))
           ELSE '{{}}'::jsonb END,
    '', '', '', 1, 3, 0, 5, 'default', 600, %(owner)s, '', '', '', '', 'w:1',
    at, CASE WHEN status = 'cancelled' THEN NULL ELSE at + interval '0.2 second' END,
    at + interval '0.2 second' + (({DURATIONS})[t] * (0.2 + 1.6 * d)) * interval '1 second', at
FROM (
    SELECT 1 + (g %% 5) AS t, random() AS d,
        now() - %(span)s * interval '1 second' * random() AS at,
        CASE WHEN random() < %(failing)s THEN 'failed'
             WHEN random() < 0.03 THEN 'cancelled' ELSE 'completed' END AS status
    FROM generate_series(1, %(rows)s) AS g
) AS s
"""

# The last six hours: a rate that swells and ebbs, and web extraction failing for half an
# hour two hours ago (a site that went down).
FILL_RECENT = f"""
{INSERT_JOBS}
SELECT gen_random_uuid(), ({TYPES})[t], '{{}}', status, 100, '', '{{}}', '', '', '', 1, 3, 0,
    5, 'default', 600, %(owner)s, '', '', '', '', 'w:1', at,
    CASE WHEN status = 'cancelled' THEN NULL ELSE at + interval '0.2 second' END,
    at + interval '0.2 second' + (({DURATIONS})[t] * (0.2 + 1.6 * d)) * interval '1 second', at
FROM (
    SELECT 1 + (k %% 5) AS t, random() AS d,
        now() - (m * 60 + 60 * random()) * interval '1 second' AS at,
        CASE WHEN k %% 5 = 3 AND m BETWEEN 100 AND 130 AND random() < 0.6 THEN 'failed'
             WHEN random() < 0.04 THEN 'failed'
             WHEN random() < 0.03 THEN 'cancelled' ELSE 'completed' END AS status
    FROM generate_series(0, 359) AS m,
        LATERAL generate_series(1, (%(per_minute)s * (1.0 + 0.6 * sin(m / 45.0)))::int) AS k
) AS s
"""

FILL_EVENTS = """
INSERT INTO jobs_jobevent (job_id, at, kind, from_status, to_status, actor, reason, attempt)
SELECT id, at, 'transition', f, t, 'system:bench', '', 1
FROM jobs_job, LATERAL (VALUES
    (created_at, '', 'pending'),
    (started_at, 'pending', 'running'),
    (CASE WHEN status = 'failed' THEN started_at + (completed_at - started_at) / 2 END,
        'running', 'retrying'),
    (completed_at, CASE WHEN started_at IS NULL THEN 'pending' ELSE 'running' END, status)
) AS e(at, f, t)
WHERE e.at IS NOT NULL
ORDER BY e.at  -- ids follow time, as they do when the events happen
"""

# The baseline: the same figures from the jobs table itself.
BASELINE_DASHBOARD = """
SELECT date_trunc('minute', completed_at) AS minute, type, status, count(*),
    avg(extract(epoch FROM completed_at - started_at)),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))
FROM jobs_job
WHERE status IN ('completed', 'failed', 'cancelled')
    AND completed_at >= now() - %s * interval '1 minute'
GROUP BY 1, 2, 3
"""
BASELINE_CREATED = """
SELECT date_trunc('minute', created_at), count(*) FROM jobs_job
WHERE created_at >= now() - %s * interval '1 minute' GROUP BY 1
"""
BASELINE_METRICS = """
SELECT type, status, count(*), sum(extract(epoch FROM completed_at - started_at)),
    count(*) FILTER (WHERE completed_at - started_at <= interval '1 second'),
    count(*) FILTER (WHERE completed_at - started_at <= interval '10 second'),
    count(*) FILTER (WHERE completed_at - started_at <= interval '60 second')
FROM jobs_job GROUP BY 1, 2
"""

WINDOWS = (60, 360, 1440)


def fill(owner_id: int, rows: int) -> dict[str, Any]:
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE jobs_tallyminute, jobs_tallytotal, jobs_tallycursor, "
            "jobs_deliveryattempt, jobs_delivery, jobs_jobevent, jobs_job"
        )
        recent_per_minute = max(1, min(200, rows // 20_000))
        cursor.execute(FILL_RECENT, {"owner": owner_id, "per_minute": recent_per_minute})
        done = cursor.rowcount
        while done < rows:
            batch = min(500_000, rows - done)
            cursor.execute(
                FILL_JOBS, {"owner": owner_id, "rows": batch, "span": 30 * 86400, "failing": 0.04}
            )
            done += batch
        cursor.execute(FILL_EVENTS)
        events = cursor.rowcount
        cursor.execute("VACUUM ANALYZE jobs_job")
        cursor.execute("VACUUM ANALYZE jobs_jobevent")
    checkpoint()
    return {"jobs": done, "events": events, "fill s": round(time.monotonic() - started, 1)}


def tally_everything() -> float:
    """The first tally of a full database, as after an upgrade (its lag set aside)."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from jobs import tally
    from jobs.models import TallyCursor

    started = time.monotonic()
    tally.roll_up()  # takes the horizons
    TallyCursor.objects.update(horizon_at=timezone.now() - timedelta(hours=1))
    while tally.roll_up(time_budget=3600):
        pass
    took = time.monotonic() - started
    with connection.cursor() as cursor:  # as autovacuum soon would, after such a load
        cursor.execute("ANALYZE jobs_tallyminute")
        cursor.execute("ANALYZE jobs_tallytotal")
    return took


def timed(call: Any, repeat: int = 20) -> dict[str, float]:
    call()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50 ms": round(statistics.median(times), 1), "p95 ms": round(times[-2], 1)}


def sql(statement: str, *args: Any) -> Any:
    from django.db import connection

    def run() -> None:
        with connection.cursor() as cursor:
            cursor.execute(statement, args)
            cursor.fetchall()

    return run


def measure(size: int, setup: Setup, owner_id: int, base: str, cookies: dict, token: str):
    import httpx

    from jobs import dashboard, metrics

    facts = fill(owner_id, size)
    facts["tally s"] = round(tally_everything(), 1)
    rows = []
    with httpx.Client(base_url=base, cookies=cookies, timeout=120) as client:
        for window in WINDOWS:

            def page(window: int = window) -> None:
                response = client.get("/admin/jobs/job/dashboard/data/", params={"window": window})
                response.raise_for_status()

            rows.append(
                {
                    "jobs": f"{facts['jobs']:,}",
                    "figure": f"dashboard, last {window // 60} h",
                    **_pair(
                        timed(page),
                        timed(lambda window=window: dashboard.figures(window)),
                        timed(sql(BASELINE_DASHBOARD, window), 5)
                        | {"extra": timed(sql(BASELINE_CREATED, window), 5)},
                    ),
                }
            )

        from django.core.cache import cache

        def scrape() -> None:
            cache.delete(metrics.CACHE_KEY)  # each scrape reads the database (Redis cache)
            response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()

        def render() -> None:
            cache.delete(metrics.CACHE_KEY)
            metrics.render()

        rows.append(
            {
                "jobs": f"{facts['jobs']:,}",
                "figure": "GET /metrics",
                **_pair(timed(scrape, 10), timed(render), timed(sql(BASELINE_METRICS), 3)),
            }
        )
    return facts, rows


def _pair(http: dict, here: dict, baseline: dict) -> dict[str, Any]:
    extra = baseline.pop("extra", None)
    base_p50 = baseline["p50 ms"] + (extra["p50 ms"] if extra else 0)
    return {
        "HTTP p50 / p95 ms": f"{http['p50 ms']} / {http['p95 ms']}",
        "in process p50 ms": here["p50 ms"],
        "baseline (jobs table) p50 ms": round(base_p50, 1),
    }


def screenshot(base: str, cookies: dict, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM_FLAGS, chromium_path

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_cookies([{"name": k, "value": v, "url": base} for k, v in cookies.items()])
        page = context.new_page()
        page.goto(f"{base}/admin/jobs/job/dashboard/?window=360")
        page.wait_for_function("() => window.Chart && Chart.getChart('per-minute')")
        page.wait_for_timeout(500)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        browser.close()


def run(sizes: list[int], shot: Path | None) -> dict[str, Any]:
    setup = Setup(embedded=False)
    token = "bench-metrics-token"  # noqa: S105 - a local benchmark's
    try:
        setup.prepare()
        from django.contrib.auth import get_user_model
        from django.test import Client

        from jobs import services

        owner = get_user_model().objects.create_user("bench-dashboard")
        staff = get_user_model().objects.create_superuser("bench-ops", password="x")  # noqa: S106
        client = Client()
        client.force_login(staff)
        cookies = {"sessionid": client.cookies["sessionid"].value}
        # A worker answers pings but takes no job: the queued jobs below stay pending.
        setup.worker("worker", concurrency=1, queues="maintenance")
        port = free_port()
        setup.gunicorn("web", port, workers=1, JOBSITE_METRICS_TOKEN=token)
        base = f"http://127.0.0.1:{port}"
        out: dict[str, Any] = {"machine": machine(), "sizes": [], "rows": []}
        for size in sizes:
            facts, rows = measure(size, setup, owner.pk, base, cookies, token)
            out["sizes"].append(facts)
            out["rows"] += rows
        show(out)  # before the screenshot: a browser that fails loses no figures
        if shot:
            for queue, n in (("documents", 40), ("media", 6), ("web", 3)):
                for _ in range(n):
                    services.job_create(
                        owner=owner,
                        job_type="echo",
                        params={},
                        actor="bench",
                        queue=queue,
                    )
            screenshot(base, cookies, shot)
        return out
    finally:
        setup.stop()


def show(out: dict[str, Any]) -> None:
    print(out["machine"])
    for facts in out["sizes"]:
        print(
            f"{facts['jobs']:,} jobs, {facts['events']:,} events: fill {facts['fill s']} s, "
            f"first tally of every event {facts['tally s']} s"
        )
    print(report.table(out["rows"]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 5_000_000])
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()
    out = run(args.sizes, args.screenshot)
    sizes = "; ".join(
        f"{f['jobs']:,} jobs ({f['events']:,} events): the first tally of every event took "
        f"{f['tally s']} s"
        for f in out["sizes"]
    )
    report.append(
        "The operators' dashboard and /metrics on 5,000,000 jobs",
        "python -m bench.dashboard",
        f"{out['machine']}; PostgreSQL + Redis, one gunicorn process (4 threads), a worker "
        f"answering pings. {sizes}. Each figure asked 20 times (p50 / p95) over HTTP by a "
        "signed-in staff member, and in process; the baseline computes the same figures "
        "with SQL over the jobs table:\n\n" + report.table(out["rows"]),
    )


if __name__ == "__main__":
    main()
