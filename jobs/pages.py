"""The live status page people open in a browser (the API's clients use JSON)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.auth import live_token, live_token_user
from jobs.errors import NotFound
from jobs.live.app import state_of
from jobs.models import Job
from jobs.selectors import job_event_timeline, job_get


def viewer_job(request: HttpRequest, job_id: str) -> tuple[Job, Any] | None:
    """The job and who may watch it: its owner or staff (a session), or anyone holding a
    live link minted for it (``?token=``). None means: log in first."""
    token = request.GET.get("token")
    try:
        if token:
            user_id = live_token_user(token, job_id)
            if user_id is None:
                raise NotFound("Invalid or expired link")
            return Job.objects.get(pk=job_id), user_id
        if not request.user.is_authenticated:
            return None
        if request.user.is_staff:
            return Job.objects.get(pk=job_id), request.user.pk
        return job_get(owner=request.user, job_id=job_id), request.user.pk
    except (NotFound, Job.DoesNotExist, ValueError) as exc:
        raise Http404("Job not found") from exc


def job_page(request: HttpRequest, job_id: str) -> HttpResponse:
    found = viewer_job(request, job_id)
    if found is None:
        return redirect_to_login(request.get_full_path(), "admin:login")
    job, viewer = found
    token = live_token(job.pk, viewer)
    config = {
        "state": state_of(job),
        "stream_url": f"/api/v1/jobs/{job.pk}/stream/?token={token}",
        "poll_url": f"/api/v1/jobs/{job.pk}/poll/?token={token}&timeout=25",
    }
    return render(
        request,
        "jobs/job_page.html",
        {"job": job, "config": config, "events": job_event_timeline(job=job)},
    )
