"""The live status page people open in a browser (the API's clients use JSON)."""

from __future__ import annotations

import math

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from jobs.auth import (
    InvalidApiKey,
    TooManyFailures,
    failure_guard,
    live_principal,
    live_token,
)
from jobs.errors import NotFound
from jobs.live.app import state_of
from jobs.models import Job
from jobs.selectors import job_event_timeline, job_watchable, live_token_target


def viewer_job(request: HttpRequest, job_id: str) -> tuple[Job, str] | None:
    """The job and whose view it is (``key:<pk>`` or ``user:<pk>``): anyone holding a live
    link minted for it (``?token=``, checked at every use), or its owner or staff (a
    session). None means: log in first."""
    token = request.GET.get("token")
    try:
        if token:
            with failure_guard(request.META.get("REMOTE_ADDR")):
                return live_token_target(token=token, job_id=job_id)
        if not request.user.is_authenticated:
            return None
        return job_watchable(user=request.user, job_id=job_id), live_principal(request)
    except (InvalidApiKey, NotFound) as exc:
        raise Http404("Job not found") from exc


def job_page(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        found = viewer_job(request, job_id)
    except TooManyFailures as exc:
        return HttpResponse(
            exc.message,
            status=429,
            content_type="text/plain; charset=utf-8",
            headers={"Retry-After": str(math.ceil(exc.retry_after))},
        )
    if found is None:
        return redirect_to_login(request.get_full_path(), "admin:login")
    job, viewer = found
    token = live_token(job.pk, viewer)
    config = {
        "state": state_of(job),
        "stream_url": f"{reverse('job-stream', args=[job.pk])}?token={token}",
        "poll_url": f"{reverse('job-poll', args=[job.pk])}?token={token}&timeout=25",
    }
    return render(
        request,
        "jobs/job_page.html",
        {"job": job, "config": config, "events": job_event_timeline(job=job)},
    )
