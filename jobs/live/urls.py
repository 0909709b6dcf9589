"""The live routes: a job's long-poll and its Server-Sent-Event stream, under our paths
and Compileo's, each with and without its trailing slash.

Listed here, where a reader looks for routes, and mounted under the API by
``jobs.api.urls``. The ASGI app (``jobs.live.app``) matches a request against this list
before Django sees it and serves it as a coroutine; where the API runs without that app
(gunicorn, ``jobsite/wsgi.py``), Django reaches these patterns and answers 501.
"""

from jobs.api.routing import both
from jobs.api.views import live_needs_asgi

POLL = {"kind": "poll"}
STREAM = {"kind": "stream"}

urlpatterns = [
    *both("jobs/<str:job_id>/poll/", live_needs_asgi, "job-poll", POLL),
    *both("jobs/<str:job_id>/stream/", live_needs_asgi, "job-stream", STREAM),
    *both("jobs/status/<str:job_id>/poll", live_needs_asgi, "compileo-poll", POLL),
    *both("jobs/status/<str:job_id>/stream", live_needs_asgi, "compileo-stream", STREAM),
]
