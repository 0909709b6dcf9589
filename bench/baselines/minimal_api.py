"""The floor for the REST API: a minimal Django + DRF app doing what a job API cannot do
without. Hashed-key auth (the key's row read once per process every few seconds, as
Jobsite does), ``POST /jobs/``: validate, one INSERT, publish on commit; ``GET /jobs/{id}/``:
one SELECT. No event log, no idempotency, no throttle, no live updates, no admin. Served
the same way as Jobsite (``python -m jobsite.serve --app bench.baselines.minimal_api:app``:
uvicorn with the same protocol, the REST views as WSGI on the same thread pool).
"""

from __future__ import annotations

import hmac
import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import django
from django.conf import settings

os.environ.setdefault("JOBSITE_VAR_DIR", "/tmp/jobsite-bench-minimal")  # noqa: S108

import jobsite.settings as jobsite_settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-minimal-api",  # noqa: S106
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    DATABASES=jobsite_settings.DATABASES,
    INSTALLED_APPS=["rest_framework"],
    MIDDLEWARE=[],
    USE_TZ=True,
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": [],
        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "UNAUTHENTICATED_USER": None,
    },
    # What jobsite.protocol reads: Jobsite's own defaults.
    **{
        name: getattr(jobsite_settings, name)
        for name in dir(jobsite_settings)
        if name.startswith(("JOBSITE_MAX_", "JOBSITE_HEADER_", "JOBSITE_BODY_"))
        or name in ("FORWARDED_ALLOW_IPS", "JOBSITE_ASGI_THREADS")
    },
)
django.setup()

from a2wsgi import WSGIMiddleware  # noqa: E402
from celery import Celery  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework import exceptions, serializers  # noqa: E402
from rest_framework.authentication import BaseAuthentication  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from bench.baselines.minimal_schema import hash_key  # noqa: E402
from jobsite.intake import received_in_full  # noqa: E402

celery = Celery(broker=jobsite_settings.CELERY_BROKER_URL)
_keys: dict[str, tuple[tuple[str, int] | None, float]] = {}


class KeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[int, str] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        key = header.removeprefix("Bearer ").strip()
        if not key.startswith("mk_") or "." not in key:
            raise exceptions.AuthenticationFailed("bad key")
        prefix = key[3:].split(".", 1)[0]
        hit = _keys.get(prefix)
        if hit is None or time.monotonic() - hit[1] > 5:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT hashed, user_id FROM bench_minimal_key WHERE prefix = %s", [prefix]
                )
                hit = (cursor.fetchone(), time.monotonic())
            _keys[prefix] = hit
        row = hit[0]
        if row is None or not hmac.compare_digest(row[0], hash_key(key)):
            raise exceptions.AuthenticationFailed("bad key")
        return row[1], key


class CreateSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=200)
    params = serializers.DictField(required=False, default=dict)


class Jobs(APIView):
    authentication_classes = [KeyAuthentication]

    def post(self, request: Any) -> Response:
        data = CreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job_id = str(uuid.uuid4())
        created = datetime.now(UTC).strftime(jobsite_settings.JOBSITE_TIMESTAMP_FORMAT)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO bench_minimal_job (id, owner_id, type, params, status, "
                    "created_at) VALUES (%s, %s, %s, %s, 'pending', %s)",
                    [job_id, request.user, data.validated_data["type"],
                     json.dumps(data.validated_data["params"]), created],
                )  # fmt: skip
            transaction.on_commit(
                lambda: celery.send_task("bench.minimal.run", args=[job_id], queue="bench-minimal")
            )
        return Response({"job_id": job_id, "status": "pending", "created_at": created}, 202)


class Job(APIView):
    authentication_classes = [KeyAuthentication]

    def get(self, request: Any, job_id: str) -> Response:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, type, params, status, result, created_at FROM bench_minimal_job "
                "WHERE id = %s AND owner_id = %s",
                [job_id, request.user],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.NotFound()
        return Response(
            {
                "job_id": row[0],
                "type": row[1],
                "params": json.loads(row[2]),
                "status": row[3],
                "result": json.loads(row[4]) if row[4] else None,
                "created_at": row[5],
            }
        )


urlpatterns = [
    path("api/v1/jobs/", Jobs.as_view()),
    path("api/v1/jobs/<str:job_id>/", Job.as_view()),
]

_rest = received_in_full(
    WSGIMiddleware(get_wsgi_application(), workers=jobsite_settings.JOBSITE_ASGI_THREADS)
)


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await _rest(scope, receive, send)
