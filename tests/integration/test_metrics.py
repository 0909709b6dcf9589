"""``GET /metrics`` after a known mix of jobs run by real workers: exact counts, the same
from every web process, the same once beat's tally has read the events, and a token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.receiver import Receiver
from jobs import services
from jobs.models import Job, JobEvent, JobStatus, TallyCursor
from tests.helpers import wait_for, wait_status

pytestmark = [pytest.mark.worker]

TOKEN = "metrics-test-token"


@pytest.fixture(scope="module")
def metrics_webs(platform) -> Iterator[list]:
    """Two web processes with the token set: any one of them answers for the cluster."""
    servers = [platform.web(JOBSITE_METRICS_TOKEN=TOKEN) for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def scrape(server, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)


def samples(server) -> dict[tuple[str, tuple], float]:
    response = scrape(server)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(figures: dict, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def create(api, **body) -> str:
    response = api.post("/api/v1/jobs/", {"type": "echo", **body}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def test_counts_after_a_known_mix_of_jobs_are_exact(
    api, live, webhooks_worker, metrics_webs, settings
):
    settings.JOBSITE_FETCH_ALLOW_HOSTS = "127.0.0.1"  # the API's check of the callback
    receiver = Receiver().start()
    first, second = metrics_webs
    before = samples(first)
    try:
        done = [create(api, params={"duration_s": 1.2, "steps": 2}) for _ in range(3)]
        retried = create(api, params={"fail_times": 1}, max_retries=2)
        failed = [create(api, params={"fail_times": 5}, max_retries=1) for _ in range(2)]
        later = create(api, params={}, run_at="2099-01-01T00:00:00Z")
        assert api.post(f"/api/v1/jobs/{later}/cancel/").status_code in (200, 202)
        hooked = create(api, params={}, callbackUrl=receiver.url)
        for job_id in [*done, retried, hooked]:
            wait_status(job_id, JobStatus.COMPLETED, timeout=30)
        for job_id in failed:
            wait_status(job_id, JobStatus.FAILED, timeout=30)
        wait_for(lambda: receiver.received, 20, "the webhook")
        wait_for(
            lambda: (
                value(samples(first), "jobsite_webhook_attempts_total", outcome="delivered")
                > value(before, "jobsite_webhook_attempts_total", outcome="delivered")
            ),
            20,
            "the delivery's attempt to be recorded",
        )
    finally:
        receiver.stop()

    after = samples(first)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("jobsite_jobs_created_total", type="echo") == 8
    # 3 + 1 done (1 of them on its second attempt), 2 failed after 2 attempts each, the hook.
    assert grew("jobsite_jobs_started_total", type="echo") == 3 + 2 + 4 + 1
    assert grew("jobsite_jobs_retried_total", type="echo") == 1 + 2
    assert grew("jobsite_jobs_finished_total", type="echo", status="completed") == 5
    assert grew("jobsite_jobs_finished_total", type="echo", status="failed") == 2
    assert grew("jobsite_jobs_finished_total", type="echo", status="cancelled") == 1
    assert grew("jobsite_webhook_attempts_total", outcome="delivered") == 1
    # The three 1.2 s jobs are over 1 s and under 2.5 s; the cancelled one never started.
    histogram = "jobsite_job_duration_seconds_bucket"
    assert grew(histogram, type="echo", status="completed", le="+Inf") == 5
    assert grew(histogram, type="echo", status="completed", le="2.5") == 5
    quick = sum(
        1
        for job in Job.objects.filter(pk__in=[*done, retried, hooked])
        if (job.completed_at - job.started_at).total_seconds() <= 1.0
    )
    assert grew(histogram, type="echo", status="completed", le="1.0") == quick
    assert grew(histogram, type="echo", status="cancelled", le="+Inf") == 0
    assert grew("jobsite_job_duration_seconds_sum", type="echo", status="completed") >= 3.6
    # Another web process says the same.
    assert {k: v for k, v in samples(second).items() if k[0].endswith("_total")} == {
        k: v for k, v in after.items() if k[0].endswith("_total")
    }
    # Once beat's tally has read every event, the counts are unchanged.
    top = JobEvent.objects.latest("id").id
    wait_for(
        lambda: TallyCursor.objects.filter(source="job_events", last_id__gte=top).exists(),
        30,
        "beat's tally to read the events",
    )
    tallied = samples(first)
    assert value(tallied, "jobsite_metrics_backlog_events") == 0
    for key in (k for k in after if k[0].endswith("_total") and "webhook" not in k[0]):
        assert tallied[key] == after[key], key


def test_gauges_tell_what_is_waiting_now(api, user, live, metrics_webs):
    [server, _] = metrics_webs
    # No worker takes the media queue in this module: the job waits there.
    job, _ = services.job_create(
        owner=user, job_type="echo", params={}, actor="test", queue="media"
    )
    figures = samples(server)
    assert value(figures, "jobsite_queue_pending_jobs", queue="media") >= 1
    assert value(figures, "jobsite_queue_depth", queue="media") >= 1
    assert value(figures, "jobsite_jobs", status="pending") >= 1
    assert value(figures, "jobsite_broker_up") == 1
    assert value(figures, "jobsite_workers_online") >= 1
    services.job_cancel(job, actor="test")


def test_the_token_guards_the_figures(metrics_webs, web):
    [server, _] = metrics_webs
    refused = scrape(server, token=None)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "not_authenticated"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert scrape(server, token="wrong").status_code == 401
    assert httpx.post(f"{server.url}/metrics", timeout=10).status_code == 405
    # Without a token set (the session's own web process), metrics are off.
    off = scrape(web, token=TOKEN)
    assert off.status_code == 404 and off.json()["error"]["code"] == "metrics_off"


def test_every_metric_the_grafana_dashboard_draws_is_served(live, metrics_webs):
    from tests.test_compose import EXPORTED_METRICS

    [server, _] = metrics_webs
    response = scrape(server)
    assert response.status_code == 200, response.text
    declared = {
        line.split()[2] for line in response.text.splitlines() if line.startswith("# TYPE ")
    }
    assert set(EXPORTED_METRICS) <= declared, set(EXPORTED_METRICS) - declared
