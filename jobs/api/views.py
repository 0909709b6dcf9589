"""Job endpoints: validate, call one service or selector, serialize."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import registry, selectors, services
from jobs.api.base import NotFound
from jobs.api.errors import error_response
from jobs.api.filters import JobFilter, NewestFirst, OldestFirst
from jobs.api.serializers import (
    SUMMARY_DEFERS,
    ArchivedJobSerializer,
    JobActionSerializer,
    JobCreateSerializer,
    JobEventPageSerializer,
    JobEventSerializer,
    JobPageSerializer,
    JobSerializer,
    JobSummarySerializer,
    JobTypeSerializer,
)
from jobs.auth import actor_for, live_principal
from jobs.models import IDEMPOTENCY_KEY_MAX, JobStatus

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=f"At most {IDEMPOTENCY_KEY_MAX} characters. Replaying the same key with the "
    "same body returns the original job; "
    "with a different body, a 422.",
)
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
        raise exceptions.ValidationError(
            {"Idempotency-Key": [f"at most {IDEMPOTENCY_KEY_MAX} characters"]}
        )
    return key


def job_response(request: Request, job, *, status: int = 200, headers=None) -> Response:
    """A job as single-job responses show it (with its live page link for this caller)."""
    data = JobSerializer(job, context={"viewer": live_principal(request)}).data
    return Response(data, status=status, headers=headers)


class JobListCreateApi(APIView):
    @extend_schema(
        operation_id="jobs_list",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, description="e.g. running,failed"),
            OpenApiParameter("type", OpenApiTypes.STR),
            OpenApiParameter("created_after", OpenApiTypes.DATETIME),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME),
            OpenApiParameter("batch", OpenApiTypes.UUID, description="The jobs of one batch"),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1-500, default 50"),
        ],
        responses=JobPageSerializer,
    )
    def get(self, request: Request) -> Response:
        jobs = selectors.job_list(owner=request.user).defer(*SUMMARY_DEFERS)
        filterset = JobFilter(request.query_params, queryset=jobs)
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        paginator = NewestFirst()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(JobSummarySerializer(page, many=True).data)

    @extend_schema(
        operation_id="jobs_create",
        request={
            "application/json": JobCreateSerializer,
            "multipart/form-data": JobCreateSerializer,
        },
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: JobSerializer},
        examples=[
            OpenApiExample(
                "An echo job",
                value={"type": "echo", "params": {"duration_s": 3, "steps": 6, "payload": "hi"}},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job, created = create_job(request, serializer.validated_data)
        return job_response(request, job, status=202, headers=created_headers(job, created))


def create_job(request: Request, data: dict[str, Any]) -> tuple[Any, bool]:
    """A job from a validated create request (``JobCreateSerializer``'s fields), as the
    caller, idempotent with the request's Idempotency-Key."""
    upload = data.get("file")
    fingerprint = services.request_fingerprint(
        {
            **{name: value for name, value in data.items() if name != "file"},
            "file": [upload.name, upload.size] if upload else None,
        }
    )
    return services.job_create(
        owner=request.user,
        job_type=data["type"],
        params=data.get("params", {}),
        actor=actor_for(request),
        priority=data.get("priority"),
        max_retries=data.get("max_retries"),
        run_at=data.get("run_at"),
        idempotency_key=idempotency_key(request),
        fingerprint=fingerprint,
        callback_url=data.get("callback_url", ""),
        input_file=upload,
    )


def created_headers(job: Any, created: bool) -> dict[str, str]:
    headers = {"Location": f"/api/v1/jobs/{job.pk}/"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return headers


class JobDetailApi(APIView):
    @extend_schema(
        operation_id="jobs_retrieve",
        parameters=[JOB_ID],
        responses=JobSerializer,
        description="A job whose record the purge deleted (JOBSITE_RETENTION_DAYS after it "
        "ended) answers with its archived outcome instead: id, type, status, result, "
        "error, attempts, times, and `archived: true`.",
    )
    def get(self, request: Request, job_id: str) -> Response:
        try:
            job = selectors.job_get(owner=request.user, job_id=job_id)
        except NotFound:
            archived = selectors.job_archive_get(owner=request.user, job_id=job_id)
            return Response(ArchivedJobSerializer(archived).data)
        return job_response(request, job)


class JobCancelApi(APIView):
    @extend_schema(
        operation_id="jobs_cancel",
        parameters=[JOB_ID],
        request=None,
        responses={200: JobActionSerializer, 202: JobActionSerializer},
        description="A waiting job is cancelled at once (200). A running job is asked to "
        "stop at its next progress call, or terminated after a grace period (202).",
    )
    def post(self, request: Request, job_id: str) -> Response:
        job = selectors.job_get(owner=request.user, job_id=job_id)
        status = services.job_cancel(job, actor=actor_for(request))
        job.refresh_from_db()
        if status == JobStatus.CANCELLED:
            message, code = f"Job {job.pk} cancelled successfully", 200
        else:
            message, code = f"Job {job.pk} is stopping: cancel requested", 202
        return Response({"message": message, "job": JobSerializer(job).data}, status=code)


class JobRestartApi(APIView):
    @extend_schema(
        operation_id="jobs_restart",
        parameters=[JOB_ID],
        request=None,
        responses=JobActionSerializer,
    )
    def post(self, request: Request, job_id: str) -> Response:
        job = selectors.job_get(owner=request.user, job_id=job_id)
        services.job_restart(job, actor=actor_for(request))
        return Response(
            {"message": f"Job {job.pk} restarted successfully", "job": JobSerializer(job).data}
        )


class JobEventsApi(APIView):
    @extend_schema(
        operation_id="jobs_events",
        parameters=[JOB_ID, OpenApiParameter("cursor", OpenApiTypes.STR)],
        responses=JobEventPageSerializer,
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = selectors.job_get(owner=request.user, job_id=job_id)
        paginator = OldestFirst()
        page = paginator.paginate_queryset(selectors.job_events(job=job), request, view=self)
        return paginator.get_paginated_response(JobEventSerializer(page, many=True).data)


class QueueStatsApi(APIView):
    @extend_schema(operation_id="jobs_queue_stats", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(selectors.queue_stats(user=request.user))


class JobTypesApi(APIView):
    @extend_schema(operation_id="job_types_list", responses=JobTypeSerializer(many=True))
    def get(self, request: Request) -> Response:
        types = [
            {
                "name": jt.name,
                "description": jt.description,
                "queue": jt.queue,
                "max_retries": jt.max_retries,
                "time_limit": jt.time_limit,
                "accepts_file": jt.accepts_file,
                "params_schema": jt.params_schema(),
                "example": jt.example,
            }
            for jt in registry.public_types()
        ]
        return Response(JobTypeSerializer(types, many=True).data)


# The same operations under Compileo's paths, with operation ids of their own.
@extend_schema_view(get=extend_schema(operation_id="compileo_job_status", tags=["compileo"]))
class CompileoStatusApi(JobDetailApi):
    pass


@extend_schema_view(post=extend_schema(operation_id="compileo_job_cancel", tags=["compileo"]))
class CompileoCancelApi(JobCancelApi):
    pass


@extend_schema_view(post=extend_schema(operation_id="compileo_job_restart", tags=["compileo"]))
class CompileoRestartApi(JobRestartApi):
    pass


def live_needs_asgi(request: HttpRequest, **_: str) -> JsonResponse:
    """Long-polls and streams hold a connection open for minutes: they are served by the
    ASGI app (a coroutine per waiting client), never on a WSGI worker's thread."""
    return error_response(
        501,
        "needs_asgi",
        "Long-polls and event streams are served by the ASGI app: run the web process "
        "with `uvicorn jobsite.asgi:application` (gunicorn's WSGI app serves the rest of "
        "the API only). Until then, poll GET /api/v1/jobs/{id}/.",
    )
