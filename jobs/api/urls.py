"""``/api/v1/`` routes: ours, and the same operations under Compileo's paths."""

from django.urls import path

from jobs.api import views

urlpatterns = [
    path("jobs/", views.JobListCreateApi.as_view(), name="jobs"),
    path("jobs/queue/stats", views.QueueStatsApi.as_view(), name="queue-stats"),
    path("jobs/status/<str:job_id>", views.CompileoStatusApi.as_view(), name="compileo-status"),
    path("jobs/cancel/<str:job_id>", views.CompileoCancelApi.as_view(), name="compileo-cancel"),
    path("jobs/restart/<str:job_id>", views.CompileoRestartApi.as_view(), name="compileo-restart"),
    path("jobs/<str:job_id>/", views.JobDetailApi.as_view(), name="job"),
    path("jobs/<str:job_id>/cancel/", views.JobCancelApi.as_view(), name="job-cancel"),
    path("jobs/<str:job_id>/restart/", views.JobRestartApi.as_view(), name="job-restart"),
    path("jobs/<str:job_id>/events/", views.JobEventsApi.as_view(), name="job-events"),
    path("job-types/", views.JobTypesApi.as_view(), name="job-types"),
]
