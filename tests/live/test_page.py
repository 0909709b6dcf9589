"""The live status page in real headless Chromium (Debian's ``chromium`` package).

Outside CI the test skips with a clear message when Chromium is missing; under
``CI=true`` it installs it (apt-get, as root) or fails (``tests.browser``).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.worker]


def slow_job(api) -> dict:
    response = api.post(
        "/api/v1/jobs/",
        {"type": "echo", "params": {"duration_s": 3, "steps": 30, "payload": {"ok": True}}},
        format="json",
    )
    return response.json()


def watch(page, url: str) -> list[float]:
    """Open the page and note the bar's width until the badge says completed."""
    widths: list[float] = []
    page.goto(url)
    for _ in range(300):
        width = page.eval_on_selector("#bar > div", "el => parseFloat(el.style.width) || 0")
        widths.append(width)
        if page.text_content("#badge") == "completed":
            break
        page.wait_for_timeout(50)
    return widths


@pytest.mark.parametrize("mode", ["stream", "polling"])
def test_the_bar_moves_and_the_status_turns_completed(web, api, browser, mode):
    job = slow_job(api)
    page = browser.new_page()
    if mode == "polling":
        page.add_init_script("delete window.EventSource")
    widths = watch(page, f"{web.url}{job['status_page']}")
    assert page.text_content("#badge") == "completed"
    assert page.get_attribute("body", "data-mode") == mode
    assert any(0 < w < 100 for w in widths), widths  # it moved while running
    assert (
        widths[-1] == 100
        or page.eval_on_selector("#bar > div", "el => parseFloat(el.style.width)") == 100
    )
    assert '"ok": true' in page.text_content("#result")
    timeline = page.text_content("#timeline")
    assert "running → completed" in timeline
    page.close()


def test_a_bad_link_is_404_and_no_link_asks_to_log_in(web, api):
    import httpx

    job = slow_job(api)
    assert httpx.get(f"{web.url}/jobs/{job['job_id']}/?token=forged").status_code == 404
    response = httpx.get(f"{web.url}/jobs/{job['job_id']}/")
    assert response.status_code == 302 and "/admin/login/" in response.headers["location"]
