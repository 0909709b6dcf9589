"""The event timeline on a job's page, drawn by templates/admin/jobs/job/timeline.html."""

from __future__ import annotations

import re

import pytest

from jobs import services
from jobs.admin import TIMELINE_MAX
from jobs.models import Job, JobEvent

pytestmark = pytest.mark.django_db

JOBS = "/admin/jobs/job/"


@pytest.fixture
def job(django_user_model) -> Job:
    owner = django_user_model.objects.create_user("olivia", password="x")
    created, _ = services.job_create(owner=owner, job_type="echo", params={}, actor="test")
    return created


def timeline_of(admin_client, job: Job) -> str:
    html = admin_client.get(f"{JOBS}{job.pk}/change/").content.decode()
    found = re.search(r'<table class="jobs-timeline">.*?</table>\s*<p>.*?</p>', html, re.S)
    assert found is not None, html
    return found.group(0)


def test_a_script_in_an_events_reason_or_actor_is_escaped(admin_client, job):
    services.job_note(
        job.pk, actor="task:<b>bold</b>", message="<script>alert('reason')</script>", attempt=2
    )

    timeline = timeline_of(admin_client, job)

    assert "<td>&lt;script&gt;alert(&#x27;reason&#x27;)&lt;/script&gt;</td>" in timeline
    assert "<td>task:&lt;b&gt;bold&lt;/b&gt;</td>" in timeline
    assert "<script>" not in timeline and "<b>bold</b>" not in timeline
    # The status badges are markup of ours and stay markup.
    assert '<span class="jobs-badge jobs-badge--pending">Pending</span>' in timeline


def test_rows_are_oldest_first_with_a_link_to_all_events(admin_client, job):
    services.job_note(job.pk, actor="test", message="second")

    timeline = timeline_of(admin_client, job)

    assert timeline.index("<td>created</td>") < timeline.index("<td>second</td>")
    assert f'href="/admin/jobs/jobevent/?job__id__exact={job.pk}">All events</a>' in timeline


def test_only_the_last_events_are_shown(admin_client, job):
    JobEvent.objects.bulk_create(
        JobEvent(job=job, kind=JobEvent.Kind.NOTE, actor="test", reason=f"note {n}")
        for n in range(TIMELINE_MAX)
    )

    timeline = timeline_of(admin_client, job)

    assert timeline.count("<tr>") == TIMELINE_MAX + 1  # the header row, then the events
    assert "<td>created</td>" not in timeline and f"<td>note {TIMELINE_MAX - 1}</td>" in timeline
    assert f"Only the last {TIMELINE_MAX} are shown: all events</a>" in timeline


def test_a_job_without_events_says_so(admin_client, job):
    job.events.all().delete()

    html = admin_client.get(f"{JOBS}{job.pk}/change/").content.decode()

    assert "No events." in html and 'class="jobs-timeline"' not in html
