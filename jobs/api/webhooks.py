"""The webhook endpoints: the owner's signing secret, its rotation, and a job's
deliveries with every attempt (what the receiver answered, how long it took, when the
next try is)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors
from jobs.api.filters import OldestFirst
from jobs.models import Delivery, DeliveryAttempt, WebhookSecret
from jobs.timestamps import iso
from jobs.webhooks import signing


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="whsec_ and base64: what receivers verify with")
    previous_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="Until then deliveries are signed with the previous one too"
    )


def _secret_data(record: WebhookSecret) -> dict[str, object]:
    return {"secret": record.secret, "previous_valid_until": iso(record.previous_until)}


class WebhookSecretApi(APIView):
    @extend_schema(operation_id="webhooks_secret", responses=WebhookSecretSerializer)
    def get(self, request: Request) -> Response:
        return Response(_secret_data(signing.secret_for(request.user.pk)))


class WebhookSecretRotateApi(APIView):
    @extend_schema(
        operation_id="webhooks_secret_rotate",
        request=None,
        responses=WebhookSecretSerializer,
        description="A new secret at once; the previous one keeps signing for the grace "
        "period (JOBSITE_WEBHOOK_SECRET_GRACE), both signatures in webhook-signature.",
    )
    def post(self, request: Request) -> Response:
        return Response(_secret_data(signing.rotate(request.user.pk)))


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "attempt",
            "at",
            "status_code",
            "response_excerpt",
            "error",
            "duration_ms",
            "next_attempt_at",
        ]


class DeliverySerializer(serializers.ModelSerializer):
    webhook_id = serializers.CharField(source="message_id")
    attempts_made = DeliveryAttemptSerializer(many=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "webhook_id",
            "event_type",
            "url",
            "status",
            "attempts",
            "next_attempt_at",
            "give_up_at",
            "created_at",
            "finished_at",
            "attempts_made",
        ]


class DeliveryPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DeliverySerializer(many=True)


class JobDeliveriesApi(APIView):
    @extend_schema(
        operation_id="jobs_deliveries",
        parameters=[
            OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
            OpenApiParameter("cursor", OpenApiTypes.STR),
        ],
        responses=DeliveryPageSerializer,
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = selectors.job_get(owner=request.user, job_id=job_id)
        paginator = OldestFirst()
        page = paginator.paginate_queryset(selectors.job_deliveries(job=job), request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)
