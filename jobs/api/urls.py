"""``/api/v1/`` routes: ours, and the same operations under Compileo's paths. Each answers
with and without its trailing slash (``jobs.api.routing``)."""

from django.urls import include, path

from jobs.api import batches, extract, views, webhooks
from jobs.api.routing import both

urlpatterns = [
    *both("jobs/", views.JobListCreateApi.as_view(), name="jobs"),
    *both("jobs/queue/stats", views.QueueStatsApi.as_view(), name="queue-stats"),
    *both("jobs/status/<str:job_id>", views.CompileoStatusApi.as_view(), name="compileo-status"),
    *both("jobs/cancel/<str:job_id>", views.CompileoCancelApi.as_view(), name="compileo-cancel"),
    *both("jobs/restart/<str:job_id>", views.CompileoRestartApi.as_view(), name="compileo-restart"),
    # Long-polls and streams: served by the ASGI app (jobs.live.app), listed there.
    path("", include("jobs.live.urls")),
    *both("jobs/<str:job_id>/", views.JobDetailApi.as_view(), name="job"),
    *both("jobs/<str:job_id>/cancel/", views.JobCancelApi.as_view(), name="job-cancel"),
    *both("jobs/<str:job_id>/restart/", views.JobRestartApi.as_view(), name="job-restart"),
    *both("jobs/<str:job_id>/events/", views.JobEventsApi.as_view(), name="job-events"),
    *both(
        "jobs/<str:job_id>/deliveries/", webhooks.JobDeliveriesApi.as_view(), name="job-deliveries"
    ),
    *both("batches/", batches.BatchListCreateApi.as_view(), name="batches"),
    *both("batches/<str:batch_id>", batches.BatchDetailApi.as_view(), name="batch"),
    *both("batches/<str:batch_id>/cancel", batches.BatchCancelApi.as_view(), name="batch-cancel"),
    *both(
        "batches/<str:batch_id>/deliveries/",
        batches.BatchDeliveriesApi.as_view(),
        name="batch-deliveries",
    ),
    *both("extract/async", extract.ExtractAsyncApi.as_view(), name="extract-async"),
    *both("job-types/", views.JobTypesApi.as_view(), name="job-types"),
    *both("webhooks/secret", webhooks.WebhookSecretApi.as_view(), name="webhooks-secret"),
    *both(
        "webhooks/secret/rotate",
        webhooks.WebhookSecretRotateApi.as_view(),
        name="webhooks-secret-rotate",
    ),
]
