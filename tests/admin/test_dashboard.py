"""The operators' dashboard's figures and views: counts per minute and per type from the
tally, links into the filtered job list that list exactly the jobs counted, staff only."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.utils import timezone

from jobs import dashboard, publish, services
from jobs.models import Job, JobStatus

pytestmark = pytest.mark.django_db

PAGE = "/admin/jobs/job/dashboard/"
DATA = "/admin/jobs/job/dashboard/data/"


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="x")
    client.force_login(user)
    return client


def create(user, **fields) -> Job:
    with mock.patch.object(publish, "publish_job"):
        job, _ = services.job_create(owner=user, job_type="echo", params={}, actor="test")
    if fields:
        Job.objects.filter(pk=job.pk).update(**fields)
    return job


def run(job: Job, *, ok: bool = True, seconds: float = 0.0) -> None:
    claimed = services.job_claim(job.pk, task_id=f"t-{job.pk}", worker="w:1")
    if seconds:
        Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=seconds))
    if ok:
        assert services.job_complete(
            job.pk, task_id=f"t-{job.pk}", attempt=claimed.attempts, result={}
        )
    else:
        assert services.job_attempt_failed(job.pk, task_id=f"t-{job.pk}", exc=ValueError("x"))


def test_figures_count_this_minute_by_status_and_type(user):
    for _ in range(3):
        run(create(user), seconds=2)
    run(create(user, max_retries=0), ok=False, seconds=40)
    create(user, queue="media")
    data = dashboard.figures(60)
    assert data["window_minutes"] == 60 and len(data["series"]["starts"]) == 60
    counts = data["series"]["counts"]
    assert sum(counts["created"]) == 5
    assert sum(counts["completed"]) == 3 and sum(counts["failed"]) == 1
    [echo] = data["types"]
    assert echo["type"] == "echo" and echo["failure_rate"] == 0.25
    assert (echo["created"], echo["completed"], echo["failed"]) == (5, 3, 1)
    assert 2 <= echo["p50_s"] <= 2.5 and 30 <= echo["p95_s"] <= 60
    assert data["slowest"] == ["echo"]
    media = next(q for q in data["queues"] if q["queue"] == "media")
    assert media["pending"] == 1 and media["oldest_pending_age_s"] >= 0
    assert {row["status"]: row["jobs"] for row in data["unfinished"]}["pending"] == 1


def test_a_day_is_drawn_in_points_of_five_minutes(user):
    run(create(user))
    data = dashboard.figures(1440)
    assert data["step_minutes"] == 5 and len(data["series"]["starts"]) == 288
    assert sum(data["series"]["counts"]["completed"]) == pytest.approx(1 / 5)


def test_links_list_exactly_the_jobs_a_figure_counts(staff, user):
    for _ in range(2):
        run(create(user))
    run(create(user, max_retries=0), ok=False)
    pending = create(user, queue="media")
    data = staff.get(DATA, {"window": 60}).json()
    [echo] = data["types"]

    def listed(url: str) -> set[str]:
        response = staff.get(url)
        assert response.status_code == 200, url
        return {str(job.pk) for job in response.context["cl"].result_list}

    failed = {str(j.pk) for j in Job.objects.filter(status=JobStatus.FAILED)}
    assert listed(echo["links"]["failed"]) == failed
    assert len(listed(echo["links"]["completed"])) == echo["completed"] == 2
    media = next(q for q in data["queues"] if q["queue"] == "media")
    assert listed(media["link"]) == {str(pending.pk)}
    # Points of the chart: the page builds their links from list_url and their minutes.
    completed = data["series"]["counts"]["completed"]
    points = [i for i, n in enumerate(completed) if n]  # one, or two across a minute's end
    starts = data["series"]["starts"]
    end = timezone.datetime.fromisoformat(starts[points[-1]]) + timedelta(minutes=1)
    query = urlencode(
        {
            "status__exact": "completed",
            "completed_at__gte": starts[points[0]],
            "completed_at__lt": end.isoformat(),
        }
    )
    assert len(listed(f"{data['list_url']}?{query}")) == sum(completed) == 2
    assert parse_qs(urlparse(echo["links"]["failed"]).query)["type"] == ["echo"]


def test_the_page_renders_with_its_figures_and_local_chart_library(staff, user):
    run(create(user))
    response = staff.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="dashboard-figures"' in html and "chart.umd.min.js" in html
    assert "cdn" not in html.lower()
    assert staff.get("/admin/jobs/job/").content.decode().count(PAGE) == 1  # linked


@pytest.mark.parametrize("window", ["7", "abc", "-1", "99999999999999999999"])
def test_a_bad_window_is_a_clear_400(staff, window):
    for url in (PAGE, DATA):
        response = staff.get(url, {"window": window})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_input"


def test_only_staff_with_view_permission_see_it(client, user, django_user_model):
    assert client.get(DATA).status_code == 302  # to the login page
    client.force_login(user)  # not staff
    assert client.get(DATA).status_code == 302
    clerk = django_user_model.objects.create_user("clerk", password="x", is_staff=True)
    client.force_login(clerk)  # staff without the job list's view permission
    assert client.get(DATA).status_code == 403
    assert client.get(PAGE).status_code == 403
