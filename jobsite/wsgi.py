"""WSGI entry point (gunicorn), for deployments that serve the REST API on threads."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
application = get_wsgi_application()

from jobs.publish import publish_in_background  # noqa: E402  (needs Django set up first)

# A create answers once its row is committed; its message goes out from a thread of its
# own, so a stalled broker never holds a request (jobs/publish.py).
publish_in_background()

# What the app loaded lives as long as the process: keep it out of the collector's full
# passes, which otherwise scan it every few seconds under load (tens of ms: the API's p99).
gc.freeze()
