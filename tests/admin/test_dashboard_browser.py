"""The operators' dashboard in real headless Chromium (Debian's ``chromium``), against the
real web process, workers and beat: its charts draw the jobs that ran, it refreshes by
itself, its figures link into the filtered job list, and it loads nothing from elsewhere.

Outside CI the test skips with a clear message when Chromium is missing; under
``CI=true`` it installs it (apt-get, as root) or fails (``tests.browser``).
"""

from __future__ import annotations

import pytest

from jobs.models import JobStatus
from tests.helpers import wait_status

pytestmark = [pytest.mark.worker]

DASHBOARD = "/admin/jobs/job/dashboard/?window=60"


def run(api, **params) -> str:
    body = {"type": "echo", "params": params, "max_retries": 0}
    response = api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def series_total(page, index: int) -> float:
    return page.evaluate(
        "(i) => Chart.getChart('per-minute').data.datasets[i].data.reduce((a, b) => a + b, 0)",
        index,
    )


def painted(page, canvas: str) -> int:
    """How many pixels of a canvas are drawn on (a chart that drew nothing has none)."""
    return page.evaluate(
        """(id) => {
            const c = document.getElementById(id);
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i]) n++;
            return n;
        }""",
        canvas,
    )


def test_the_dashboard_charts_real_jobs_refreshes_and_links_to_them(
    web, api, browser, django_user_model, tmp_path
):
    django_user_model.objects.create_superuser("ops", password="dash-pass-1")
    for job_id in [run(api) for _ in range(3)]:
        wait_status(job_id, JobStatus.COMPLETED)
    wait_status(run(api, fail_times=5), JobStatus.FAILED)

    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(web.url) else elsewhere.append(r.url))
    page.goto(f"{web.url}/admin/login/?next={DASHBOARD}")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "dash-pass-1")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{DASHBOARD}")
    page.wait_for_function("() => window.Chart && Chart.getChart('per-minute')")

    # Datasets: created, completed, failed, cancelled, retried.
    assert series_total(page, 0) == 4
    assert series_total(page, 1) == 3
    assert series_total(page, 2) == 1
    row = page.locator("#types tr[data-type=echo] td")
    assert row.nth(2).text_content() == "3" and row.nth(3).text_content() == "1"
    assert row.nth(6).text_content() == "25.0%"
    for canvas in ("per-minute", "failure-chart", "slow-chart", "queue-chart"):
        assert painted(page, canvas) > 500, canvas
    assert page.text_content("#workers-online").isdigit()

    # It refreshes by itself: a job that ends now shows up without a reload.
    wait_status(run(api), JobStatus.COMPLETED)
    page.wait_for_function(
        "() => Chart.getChart('per-minute').data.datasets[1].data.reduce((a, b) => a + b, 0) == 4",
        timeout=20_000,
    )
    assert int(page.get_attribute("#dashboard", "data-refreshes")) >= 1
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 20_000

    # The failed count links to the one failed job.
    page.locator("#types tr[data-type=echo] td").nth(3).locator("a").click()
    page.wait_for_url("**/admin/jobs/job/?*")
    assert page.locator("#result_list tbody tr").count() == 1
    assert "failed" in page.locator("#result_list tbody tr").first.text_content().lower()
    assert elsewhere == []  # the chart library and everything else came from our server
    page.close()
