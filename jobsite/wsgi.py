"""WSGI entry point (gunicorn), for deployments that serve the REST API on threads."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
application = get_wsgi_application()
