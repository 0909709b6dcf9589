"""The operators' admin: lists, the job page, steering actions through services, API keys."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from jobs import auth, services
from jobs.auth import hash_key
from jobs.models import ApiKey, Job, JobEvent, JobStatus

pytestmark = pytest.mark.django_db

JOBS = "/admin/jobs/job/"
KEYS = "/admin/jobs/apikey/"


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("olivia", password="x")


def make_job(owner, params=None) -> Job:
    job, _ = services.job_create(owner=owner, job_type="echo", params=params or {}, actor="test")
    return job


def end(job: Job, status: str, **fields) -> None:
    """Put a job in a final state directly (tests only: services never do this)."""
    Job.objects.filter(pk=job.pk).update(status=status, completed_at=timezone.now(), **fields)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def job_permissions(*codenames):
    return Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames)


def test_changelist_shows_status_badges_and_progress_bars(admin_client, owner):
    make_job(owner, params={"payload": "<script>alert(1)</script>"})
    end(make_job(owner), JobStatus.FAILED, progress=40.0)

    response = admin_client.get(JOBS)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="jobs-badge jobs-badge--pending"' in html
    assert 'class="jobs-badge jobs-badge--failed"' in html
    assert '<progress class="jobs-progress jobs-progress--failed" max="100" value="40.0"' in html
    assert "<script>alert(1)" not in html


def test_changelist_filters_and_search(admin_client, owner, django_user_model):
    job = make_job(owner)
    other = make_job(django_user_model.objects.create_user("zed"))
    end(other, JobStatus.COMPLETED)

    by_id = admin_client.get(JOBS, {"q": str(job.pk)}).content.decode()
    by_owner = admin_client.get(JOBS, {"q": "zed"}).content.decode()
    by_status = admin_client.get(JOBS, {"status__exact": "completed"}).content.decode()

    assert str(job.pk) in by_id and str(other.pk) not in by_id
    assert str(other.pk) in by_owner and str(job.pk) not in by_owner
    assert str(other.pk) in by_status and str(job.pk) not in by_status
    for query in (
        {"type": "echo"},
        {"type": "__other__"},
        {"created_at__gte": "2000-01-01 00:00:00+00:00"},
    ):
        assert admin_client.get(JOBS, query).status_code == 200


def test_change_page_shows_timeline_and_escaped_json(admin_client, owner):
    job = make_job(owner, params={"payload": "<script>alert('p')</script>"})
    end(job, JobStatus.FAILED, result={"html": "<b>x</b>"}, error_traceback="Traceback <frame>")

    response = admin_client.get(f"{JOBS}{job.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="jobs-timeline"' in html
    assert "created" in html and "<td>test</td>" in html  # the creation event and its actor
    assert "&quot;&lt;script&gt;alert(&#x27;p&#x27;)&lt;/script&gt;&quot;" in html
    assert "&quot;html&quot;: &quot;&lt;b&gt;x&lt;/b&gt;&quot;" in html
    assert "Traceback &lt;frame&gt;" in html
    assert "<script>alert" not in html and "<b>x</b>" not in html
    assert "Restart job" in html and "Cancel job" not in html


def test_job_form_never_saves_and_jobs_are_not_added_here(admin_client, owner):
    job = make_job(owner)

    assert 'name="_save"' not in admin_client.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert admin_client.post(f"{JOBS}{job.pk}/change/", {}).status_code == 403
    assert admin_client.get(f"{JOBS}add/").status_code == 403


def test_cancel_action_cancels_waiting_jobs_and_skips_a_completed_one(admin_client, owner):
    waiting = [make_job(owner), make_job(owner)]
    done = make_job(owner)
    end(done, JobStatus.COMPLETED)

    response = admin_client.post(
        JOBS,
        {"action": "cancel_jobs", "_selected_action": [str(j.pk) for j in [*waiting, done]]},
        follow=True,
    )

    assert response.status_code == 200
    assert "2 cancelled, 1 skipped: Job is already completed (1)" in messages_of(response)
    assert {Job.objects.get(pk=j.pk).status for j in waiting} == {JobStatus.CANCELLED}
    assert Job.objects.get(pk=done.pk).status == JobStatus.COMPLETED
    event = JobEvent.objects.filter(job=waiting[0]).latest("id")
    assert (event.to_status, event.actor) == (JobStatus.CANCELLED, "user:admin")


def test_restart_action_restarts_a_failed_job(admin_client, owner):
    failed = make_job(owner)
    end(failed, JobStatus.FAILED, error_code="boom")

    response = admin_client.post(
        JOBS, {"action": "restart_jobs", "_selected_action": [str(failed.pk)]}, follow=True
    )

    assert "1 restarted" in messages_of(response)
    failed.refresh_from_db()
    assert (failed.status, failed.error_code) == (JobStatus.PENDING, "")
    assert failed.events.latest("id").actor == "user:admin"


def test_job_page_buttons_steer_one_job(admin_client, owner):
    job = make_job(owner)

    assert admin_client.get(f"{JOBS}{job.pk}/cancel/").status_code == 405
    response = admin_client.post(f"{JOBS}{job.pk}/cancel/", follow=True)
    assert response.redirect_chain[-1][0] == f"{JOBS}{job.pk}/change/"
    assert f"Job {job.pk}: cancelled." in messages_of(response)
    admin_client.post(f"{JOBS}{job.pk}/restart/")
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING

    again = admin_client.post(f"{JOBS}{job.pk}/restart/", follow=True)
    assert any("can be restarted" in text for text in messages_of(again))


def test_steering_needs_the_change_permission(client, owner, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(*job_permissions("view_job"))
    client.force_login(viewer)
    job = make_job(owner)

    assert client.get(f"{JOBS}{job.pk}/change/").status_code == 200
    assert client.post(f"{JOBS}{job.pk}/cancel/").status_code == 403
    assert "cancel_jobs" not in client.get(JOBS).content.decode()
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING


def test_api_key_add_shows_the_key_once_and_stores_only_its_hash(admin_client, owner):
    form = admin_client.get(f"{KEYS}add/").content.decode()
    assert 'name="hashed_key"' not in form and 'name="prefix"' not in form

    response = admin_client.post(
        f"{KEYS}add/", {"user": owner.pk, "name": "ci", "_save": "Save"}, follow=True
    )

    assert response.status_code == 200
    shown = re.search(r"<code>(jsk_[^<]+)</code>", " ".join(messages_of(response)))
    assert shown is not None
    key = shown.group(1)
    row = ApiKey.objects.get(user=owner, name="ci")
    assert key.startswith(f"jsk_{row.prefix}.")
    assert row.hashed_key == hash_key(key)
    assert key not in admin_client.get(KEYS).content.decode()  # shown once
    page = admin_client.get(f"{KEYS}{row.pk}/change/").content.decode()
    assert row.hashed_key not in page and f"jsk_{row.prefix}…" in page


def test_api_key_edit_keeps_a_revocation_made_meanwhile(admin_client, owner):
    api_key, _ = auth.api_key_create(user=owner, name="old")
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())

    response = admin_client.post(
        f"{KEYS}{api_key.pk}/change/",
        {"name": "new", "expires_at_0": "", "expires_at_1": "", "_save": "Save"},
    )

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.name == "new" and api_key.revoked_at is not None


def test_revoke_action(admin_client, owner):
    active, _ = auth.api_key_create(user=owner, name="a")
    revoked, _ = auth.api_key_create(user=owner, name="b")
    auth.api_key_revoke(revoked)

    response = admin_client.post(
        KEYS, {"action": "revoke_keys", "_selected_action": [active.pk, revoked.pk]}, follow=True
    )

    assert "1 revoked, 1 already revoked" in messages_of(response)
    active.refresh_from_db()
    assert active.revoked_at is not None and not active.is_active


def test_job_events_are_read_only(admin_client, owner):
    job = make_job(owner)
    event = job.events.get()

    listing = admin_client.get("/admin/jobs/jobevent/", {"job__id__exact": str(job.pk)})
    page = admin_client.get(f"/admin/jobs/jobevent/{event.pk}/change/").content.decode()

    assert listing.status_code == 200 and str(job.pk) in listing.content.decode()
    assert 'name="_save"' not in page and 'class="deletelink"' not in page
    assert admin_client.get("/admin/jobs/jobevent/add/").status_code == 403
    assert admin_client.post(f"/admin/jobs/jobevent/{event.pk}/change/", {}).status_code == 403


def test_deleting_a_job_deletes_its_events(admin_client, owner):
    job = make_job(owner)

    admin_client.post(f"{JOBS}{job.pk}/delete/", {"post": "yes"})

    assert not Job.objects.filter(pk=job.pk).exists()
    assert not JobEvent.objects.filter(job_id=job.pk).exists()
