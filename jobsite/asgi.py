"""ASGI entry point (uvicorn): Django for everything, except the long-polls and streams,
which go to ``jobs.live.app`` (async, no thread per waiting client)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
django_app = get_asgi_application()

from jobs.live.app import app as live_app  # noqa: E402  (needs Django set up first)
from jobs.live.app import route  # noqa: E402


async def application(scope, receive, send):
    if scope["type"] == "http" and route(scope["path"]):
        return await live_app(scope, receive, send)
    return await django_app(scope, receive, send)
