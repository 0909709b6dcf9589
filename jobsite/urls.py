"""Top-level routes: the API, its schema and docs, the admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jobs.api.routing import API_PREFIX
from jobs.metrics import metrics_view
from jobs.pages import job_page

urlpatterns = [
    path(API_PREFIX, include("jobs.api.urls")),  # the live routes: jobs/live/urls.py
    path(API_PREFIX, include("processing.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    path("jobs/<str:job_id>/", job_page, name="job-page"),
    path("metrics", metrics_view, name="metrics"),
]

handler400 = "jobs.api.errors.bad_request"
handler404 = "jobs.api.errors.not_found"
handler500 = "jobs.api.errors.server_error"
