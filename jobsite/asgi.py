"""ASGI entry point (uvicorn): the long-polls and streams go to ``jobs.live.app`` (async,
no thread per waiting client); every other request goes to Django's WSGI handler on a
pool of threads.

Why not Django's ASGI handler for the REST API: it runs each sync view through
``sync_to_async(thread_sensitive=True)``, that is on one thread per process, so short
requests queue behind each other (docs/benchmarks.md: at 300 requests/s, p50 over a
second). As WSGI on ``JOBSITE_ASGI_THREADS`` threads the same views serve like gunicorn's
threaded workers, and one server still carries both kinds of path.
"""

import gc
import os

from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

from jobsite.intake import received_in_full

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
django_app = get_asgi_application()

from jobs.publish import publish_in_background  # noqa: E402  (needs Django set up first)

# A create answers once its row is committed; its message goes out from a thread of its
# own, so a stalled broker never holds a request (jobs/publish.py).
publish_in_background()
# A thread takes a request only once its body has arrived in full (jobsite/intake.py).
rest_app = received_in_full(
    WSGIMiddleware(get_wsgi_application(), workers=settings.JOBSITE_ASGI_THREADS)
)

from jobs.live.app import app as live_app  # noqa: E402  (needs Django set up first)
from jobs.live.app import route  # noqa: E402

# See jobsite/wsgi.py: what the app loaded stays out of the collector's full passes.
gc.freeze()


async def application(scope, receive, send):
    if scope["type"] == "http":
        if route(scope["path"]):
            return await live_app(scope, receive, send)
        return await rest_app(scope, receive, send)
    return await django_app(scope, receive, send)
