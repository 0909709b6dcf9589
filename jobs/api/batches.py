"""Batch endpoints: many jobs in one request (JSON specifications, or uploaded files of
one job type), their counts and progress, cancelling what has not ended, and the batch's
``batch.completed`` delivery."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors, services
from jobs.api.filters import NewestFirst, OldestFirst
from jobs.api.serializers import (
    JobCreateSerializer,
    ParamsField,
    StrictSerializer,
    fold_callback_url,
)
from jobs.api.views import IDEMPOTENCY_HEADER, idempotency_key
from jobs.api.webhooks import DeliveryPageSerializer, DeliverySerializer
from jobs.auth import actor_for
from jobs.models import Batch, JobStatus
from jobs.services.batches import JobSpec, batch_cancel, batch_create
from jobs.timestamps import iso

BATCH_ID = OpenApiParameter("batch_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class BatchCreateSerializer(StrictSerializer):
    jobs = serializers.ListField(
        child=JobCreateSerializer(),
        required=False,
        help_text="Job specifications, as POST /api/v1/jobs/ takes them (JSON).",
    )
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=False, max_length=255),
        required=False,
        help_text="Uploaded files (multipart, the field repeated): one job of `type` each.",
    )
    type = serializers.CharField(
        required=False, max_length=200, help_text="With files: the job type of each."
    )
    params = ParamsField(required=False, help_text="With files: the params of each job.")
    collection_id = serializers.CharField(
        required=False, max_length=100, help_text="With files: same as params.collection_id."
    )
    label = serializers.CharField(required=False, allow_blank=True, max_length=200)
    callback_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Told once, when the batch's last job ends: a signed batch.completed.",
    )
    callbackUrl = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Same as callback_url."
    )

    validate_callback_url = JobCreateSerializer.validate_callback_url
    validate_callbackUrl = JobCreateSerializer.validate_callback_url

    def to_internal_value(self, data: Any) -> Any:
        """Count the specifications before validating any: a list past the limit is refused
        without the work of checking each."""
        raw = data.get("jobs") if hasattr(data, "get") else None
        limit = settings.JOBSITE_BATCH_MAX_JOBS
        if isinstance(raw, list) and len(raw) > limit:
            raise serializers.ValidationError(
                {"jobs": [f"{len(raw)} jobs, over the limit of {limit} (JOBSITE_BATCH_MAX_JOBS)"]}
            )
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        fold_callback_url(attrs)
        has_jobs, has_files = bool(attrs.get("jobs")), bool(attrs.get("files"))
        if has_jobs == has_files:
            raise serializers.ValidationError(
                {"jobs": ["give either jobs (JSON specifications) or files (uploads), not both"]}
            )
        if has_files:
            if not attrs.get("type"):
                raise serializers.ValidationError({"type": ["required with files"]})
            params = dict(attrs.get("params") or {})
            if "collection_id" in attrs:
                params["collection_id"] = attrs.pop("collection_id")
            attrs["params"] = params
        else:
            extra = sorted({"type", "params", "collection_id"} & set(attrs))
            if extra:
                raise serializers.ValidationError(
                    {name: ["only with files (each job of jobs has its own)"] for name in extra}
                )
        return attrs


def specs_of(data: dict[str, Any]) -> list[JobSpec]:
    if data.get("files"):
        return [
            JobSpec(type=data["type"], params=data["params"], input_file=upload)
            for upload in data["files"]
        ]
    return [
        JobSpec(
            type=spec["type"],
            params=spec.get("params", {}),
            priority=spec.get("priority"),
            max_retries=spec.get("max_retries"),
            run_at=spec.get("run_at"),
            callback_url=spec.get("callback_url", ""),
        )
        for spec in data["jobs"]
    ]


def fingerprint_of(data: dict[str, Any]) -> str:
    files = [[upload.name, upload.size] for upload in data.get("files") or []]
    return services.request_fingerprint(
        {**{name: value for name, value in data.items() if name != "files"}, "files": files}
    )


class BatchCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    scheduled = serializers.IntegerField()
    running = serializers.IntegerField()
    retrying = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class BatchSerializer(serializers.Serializer):
    batch_id = serializers.UUIDField()
    label = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["pending", "running", "completed"],
        help_text="completed once every job has ended (completed, failed or cancelled).",
    )
    total = serializers.IntegerField()
    counts = BatchCountsSerializer()
    progress = serializers.FloatField(help_text="0-100; an ended job counts as 100.")
    callback_url = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    jobs = serializers.CharField(help_text="Its jobs: the job list filtered by this batch.")


class BatchCreatedSerializer(BatchSerializer):
    job_ids = serializers.ListField(child=serializers.UUIDField())


class BatchPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = BatchSerializer(many=True)


class BatchCancelSerializer(serializers.Serializer):
    message = serializers.CharField()
    cancelled = serializers.IntegerField(help_text="Waiting jobs, cancelled at once.")
    stopping = serializers.IntegerField(help_text="Running jobs, asked to stop.")
    batch = BatchSerializer()


def batch_data(batch: Batch, counted: tuple[dict[str, int], float] | None = None) -> dict[str, Any]:
    """The batch as its status endpoint (and its ``batch.completed`` message) shows it."""
    counts, progress = counted or selectors.batch_counts(batch=batch)
    waiting = counts[JobStatus.PENDING] + counts[JobStatus.SCHEDULED]
    open_jobs = waiting + counts[JobStatus.RUNNING] + counts[JobStatus.RETRYING]
    if open_jobs == 0:
        status = "completed"
    elif waiting == sum(counts.values()):
        status = "pending"
    else:
        status = "running"
    return {
        "batch_id": str(batch.pk),
        "label": batch.label,
        "status": status,
        "total": batch.total,
        "counts": counts,
        "progress": progress,
        "callback_url": batch.callback_url or None,
        "created_at": iso(batch.created_at),
        "completed_at": iso(batch.completed_at),
        "jobs": f"/api/v1/jobs/?batch={batch.pk}",
    }


class BatchPages(NewestFirst):
    """Each batch on a page is counted (one indexed GROUP BY): fewer per page than jobs."""

    page_size = 20
    max_page_size = 100


class BatchListCreateApi(APIView):
    @extend_schema(
        operation_id="batches_list",
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1-100, default 20"),
        ],
        responses=BatchPageSerializer,
    )
    def get(self, request: Request) -> Response:
        paginator = BatchPages()
        page = paginator.paginate_queryset(
            selectors.batch_list(owner=request.user), request, view=self
        )
        return paginator.get_paginated_response([batch_data(batch) for batch in page])

    @extend_schema(
        operation_id="batches_create",
        request={
            "application/json": BatchCreateSerializer,
            "multipart/form-data": BatchCreateSerializer,
        },
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: BatchCreatedSerializer},
        description="All of the batch's jobs are created in one transaction, or none (a 4xx "
        "names the first specification refused). At most JOBSITE_BATCH_MAX_JOBS jobs.",
        examples=[
            OpenApiExample(
                "Three echo jobs, told when all have ended",
                value={
                    "jobs": [{"type": "echo", "params": {"payload": n}} for n in range(3)],
                    "callback_url": "https://example.com/hooks/jobsite",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = BatchCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        batch, created = batch_create(
            owner=request.user,
            specs=specs_of(data),
            actor=actor_for(request),
            label=data.get("label", ""),
            callback_url=data.get("callback_url", ""),
            idempotency_key=idempotency_key(request),
            fingerprint=fingerprint_of(data),
        )
        body = batch_data(batch)
        body["job_ids"] = [
            str(pk) for pk in batch.jobs.order_by("created_at", "pk").values_list("pk", flat=True)
        ]
        headers = {"Location": f"/api/v1/batches/{batch.pk}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status=202, headers=headers)


class BatchDetailApi(APIView):
    @extend_schema(
        operation_id="batches_retrieve", parameters=[BATCH_ID], responses=BatchSerializer
    )
    def get(self, request: Request, batch_id: str) -> Response:
        return Response(batch_data(selectors.batch_get(owner=request.user, batch_id=batch_id)))


class BatchCancelApi(APIView):
    @extend_schema(
        operation_id="batches_cancel",
        parameters=[BATCH_ID],
        request=None,
        responses=BatchCancelSerializer,
        description="Cancels every job of the batch that has not ended: waiting ones at "
        "once, running ones at their next progress call. Ended jobs are left as they are.",
    )
    def post(self, request: Request, batch_id: str) -> Response:
        batch = selectors.batch_get(owner=request.user, batch_id=batch_id)
        counts = batch_cancel(batch, actor=actor_for(request))
        batch.refresh_from_db()
        message = (
            f"Batch {batch.pk}: {counts['cancelled']} job(s) cancelled, "
            f"{counts['stopping']} stopping"
        )
        return Response({"message": message, **counts, "batch": batch_data(batch)})


class BatchDeliveriesApi(APIView):
    @extend_schema(
        operation_id="batches_deliveries",
        parameters=[BATCH_ID, OpenApiParameter("cursor", OpenApiTypes.STR)],
        responses=DeliveryPageSerializer,
    )
    def get(self, request: Request, batch_id: str) -> Response:
        batch = selectors.batch_get(owner=request.user, batch_id=batch_id)
        paginator = OldestFirst()
        page = paginator.paginate_queryset(
            selectors.batch_deliveries(batch=batch), request, view=self
        )
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)
