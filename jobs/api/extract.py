"""``POST /api/v1/extract/async``: KnowledgeSDK's contract for a web extraction, a job of
type ``web_extraction`` (the same job ``POST /api/v1/jobs/`` creates), answered 202 with
``{"jobId", "status": "pending"}`` as soon as the row is committed."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.serializers import (
    JobCreateSerializer,
    ParamsField,
    StrictSerializer,
    fold_callback_url,
)
from jobs.api.views import IDEMPOTENCY_HEADER, create_job, created_headers

JOB_TYPE = "web_extraction"


class ExtractSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2000, help_text="The page to extract.")
    collection_id = serializers.CharField(max_length=100)
    render_js = serializers.BooleanField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    metadata = ParamsField(required=False)
    callbackUrl = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Told when it ends."
    )
    callback_url = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Same as callbackUrl."
    )

    validate_callback_url = JobCreateSerializer.validate_callback_url
    validate_callbackUrl = JobCreateSerializer.validate_callback_url

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        fold_callback_url(attrs)
        return attrs


class ExtractAcceptedSerializer(serializers.Serializer):
    jobId = serializers.UUIDField()
    status = serializers.CharField()
    statusUrl = serializers.CharField()


class ExtractAsyncApi(APIView):
    @extend_schema(
        operation_id="extract_async",
        request=ExtractSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: ExtractAcceptedSerializer},
        description="A web_extraction job: the page fetched (rendered first with render_js), "
        "its main content stored as memories in the collection. Follow it at statusUrl, or "
        "be told at callbackUrl.",
        examples=[
            OpenApiExample(
                "A blog post into a collection",
                value={
                    "url": "https://example.com/blog/post",
                    "collection_id": "3f1c2d4e-0000-4000-8000-000000000000",
                    "callbackUrl": "https://example.com/hooks/jobsite",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = ExtractSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        callback_url = data.pop("callback_url", "")
        job, created = create_job(
            request, {"type": JOB_TYPE, "params": data, "callback_url": callback_url}
        )
        body = {"jobId": str(job.pk), "status": job.status, "statusUrl": f"/api/v1/jobs/{job.pk}"}
        return Response(body, status=202, headers=created_headers(job, created))
