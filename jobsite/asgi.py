"""ASGI entry point (uvicorn): the web app, and the live streams that need async views."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
application = get_asgi_application()
