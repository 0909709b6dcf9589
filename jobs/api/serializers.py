"""Input and output shapes of the jobs API (Compileo's field names, plus ours)."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import serializers

from jobs import outbound
from jobs.auth import live_token
from jobs.errors import error_fields
from jobs.models import Job, JobEvent
from jobs.timestamps import iso


class StrictSerializer(serializers.Serializer):
    """Unknown fields are an error, not silently dropped."""

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class ParamsField(serializers.JSONField):
    """A JSON object, or (in a multipart form) a string holding one."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                self.fail("invalid")
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be a JSON object")
        return super().to_internal_value(data)


PARAM_SHORTCUTS = ("collection_id", "file_url")


def fold_callback_url(attrs: dict[str, Any]) -> None:
    """KnowledgeSDK's ``callbackUrl`` into ``callback_url``; both, differing, is a 400."""
    if "callbackUrl" in attrs:
        camel = attrs.pop("callbackUrl")
        if attrs.get("callback_url", camel) != camel:
            raise serializers.ValidationError({"callbackUrl": ["differs from callback_url"]})
        attrs["callback_url"] = camel


class JobCreateSerializer(StrictSerializer):
    type = serializers.CharField(max_length=200)
    params = ParamsField(required=False, default=dict)
    priority = serializers.IntegerField(required=False, min_value=0, max_value=9)
    max_retries = serializers.IntegerField(required=False, min_value=0, max_value=25)
    run_at = serializers.DateTimeField(required=False, allow_null=True)
    callback_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Told when the job ends: a signed POST (Standard Webhooks) of the job.",
    )
    # KnowledgeSDK's clients send camelCase at the top level.
    callbackUrl = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Same as callback_url."
    )
    file = serializers.FileField(required=False, allow_empty_file=False, max_length=255)
    # Hebbrix's clients send these beside `type`; they are the job's params of that name.
    collection_id = serializers.CharField(
        required=False, max_length=100, help_text="Same as params.collection_id."
    )
    file_url = serializers.CharField(
        required=False, max_length=2000, help_text="Same as params.file_url."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Fold the top-level shortcuts into params; saying both ways differently is a 400."""
        fold_callback_url(attrs)
        params = dict(attrs.get("params") or {})
        for name in PARAM_SHORTCUTS:
            if name not in attrs:
                continue
            value = attrs.pop(name)
            if name in params and params[name] != value:
                raise serializers.ValidationError({name: [f"differs from params.{name}"]})
            params[name] = value
        attrs["params"] = params
        return attrs

    def validate_callback_url(self, value: str) -> str:
        """The address checks of fetched files, as far as they go without a DNS lookup
        (names are resolved and checked again at every delivery)."""
        if value:
            try:
                outbound.check_url(value, allow_hosts=outbound.allowed_hosts_from_settings())
            except outbound.FetchError as exc:
                raise serializers.ValidationError(exc.message) from None
        return value

    def validate_callbackUrl(self, value: str) -> str:
        return self.validate_callback_url(value)


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class JobErrorFields:
    """``error`` and ``error_message`` of a job, live or archived: set once it has failed
    for good (``error_fields``)."""

    def get_error(self, job: Any) -> dict[str, str] | None:
        return error_fields(job.status, job.error_code, job.error_message).get("error")

    get_error.output_field = JobErrorSerializer(allow_null=True)  # type: ignore[attr-defined]

    def get_error_message(self, job: Any) -> str | None:
        """Hebbrix's clients read ``error_message`` (set with ``error``)."""
        error = self.get_error(job)
        return error["message"] if error else None


class ArchivedJobSerializer(JobErrorFields, serializers.Serializer):
    """A purged job's outcome: what ``GET /jobs/{id}`` answers once the purge has deleted
    the job's record (``archived`` is true; events, params and upload are gone)."""

    job_id = serializers.UUIDField(source="id")
    id = serializers.UUIDField()
    type = serializers.CharField()
    status = serializers.CharField()
    result = serializers.JSONField(allow_null=True)
    error = serializers.SerializerMethodField()
    error_message = serializers.SerializerMethodField()
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    archived = serializers.SerializerMethodField()
    archived_at = serializers.DateTimeField()

    def get_archived(self, job: Any) -> bool:
        return True


class JobSerializer(JobErrorFields, serializers.ModelSerializer):
    # Fields left out (JobSummarySerializer): never read from the row.
    omits: tuple[str, ...] = ()
    job_id = serializers.UUIDField(source="id", read_only=True)
    error = serializers.SerializerMethodField(
        help_text="Set once the job has failed for good (status failed), else null."
    )
    error_message = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField(
        help_text="The error of an attempt that was (or will be) retried; null otherwise."
    )
    duration = serializers.FloatField(read_only=True, allow_null=True)
    cancel_requested = serializers.SerializerMethodField()
    has_file = serializers.SerializerMethodField()
    callback_url = serializers.SerializerMethodField()
    batch_id = serializers.UUIDField(
        read_only=True, allow_null=True, help_text="The batch it was created in, if any."
    )
    status_page = serializers.SerializerMethodField(
        help_text="A link to the job's live page (single-job responses only)."
    )

    class Meta:
        model = Job
        fields = [
            "job_id",
            "id",
            "type",
            "status",
            "progress",
            "current_step",
            "result",
            "error",
            "error_message",
            "last_error",
            "created_at",
            "started_at",
            "completed_at",
            "updated_at",
            "attempts",
            "max_retries",
            "duration",
            "params",
            "priority",
            "queue",
            "run_at",
            "next_retry_at",
            "cancel_requested",
            "callback_url",
            "batch_id",
            "has_file",
            "status_page",
        ]
        read_only_fields = fields

    def get_last_error(self, job: Job) -> dict[str, str] | None:
        return error_fields(job.status, job.error_code, job.error_message).get("last_error")

    get_last_error.output_field = JobErrorSerializer(allow_null=True)  # type: ignore[attr-defined]

    def get_cancel_requested(self, job: Job) -> bool:
        return job.cancel_requested_at is not None

    def get_callback_url(self, job: Job) -> str | None:
        return job.callback_url or None

    def get_has_file(self, job: Job) -> bool:
        return bool(job.input_file)

    def get_status_page(self, job: Job) -> str | None:
        """A link bound to the API key of this request (or the session's user): it stops
        working when that key is revoked or its user deactivated."""
        viewer = self.context.get("viewer")  # whom the link answers to (live_principal)
        if viewer is None:
            return None
        return f"/jobs/{job.pk}/?token={live_token(job.pk, viewer)}"

    def to_representation(self, job: Job) -> dict[str, Any]:
        """Written out by hand: DRF would build the ~25 fields above again for every job of
        every response. The fields above are what the OpenAPI schema shows; a test and the
        schema fuzzing check that this agrees with them."""
        job_id = str(job.pk)
        errors = error_fields(job.status, job.error_code, job.error_message)
        failed = errors.get("error")
        data = {
            "job_id": job_id,
            "id": job_id,
            "type": job.type,
            "status": job.status,
            "progress": job.progress,
            "current_step": job.current_step,
            "result": None if "result" in self.omits else job.result,
            "error": failed,
            "error_message": failed["message"] if failed else None,
            "last_error": errors.get("last_error"),
            "created_at": iso(job.created_at),
            "started_at": iso(job.started_at),
            "completed_at": iso(job.completed_at),
            "updated_at": iso(job.updated_at),
            "attempts": job.attempts,
            "max_retries": job.max_retries,
            "duration": job.duration,
            "params": None if "params" in self.omits else job.params,
            "priority": job.priority,
            "queue": job.queue,
            "run_at": iso(job.run_at),
            "next_retry_at": iso(job.next_retry_at),
            "cancel_requested": self.get_cancel_requested(job),
            "callback_url": self.get_callback_url(job),
            "batch_id": None if job.batch_id is None else str(job.batch_id),
            "has_file": self.get_has_file(job),
            "status_page": self.get_status_page(job),
        }
        for name in self.omits:
            del data[name]
        return data


# What a list leaves out of each job, and the columns it does not even read.
SUMMARY_OMITS = ("params", "result")
SUMMARY_DEFERS = (*SUMMARY_OMITS, "error_traceback")


class JobSummarySerializer(JobSerializer):
    """A job in a list: everything but its ``params`` and ``result``, so a page's size does
    not depend on what its jobs carry (a single-job GET has them)."""

    class Meta(JobSerializer.Meta):
        fields = [name for name in JobSerializer.Meta.fields if name not in SUMMARY_OMITS]
        read_only_fields = fields

    omits = SUMMARY_OMITS


class JobActionSerializer(serializers.Serializer):
    message = serializers.CharField()
    job = JobSerializer()


class JobEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = [
            "id",
            "at",
            "kind",
            "from_status",
            "to_status",
            "actor",
            "reason",
            "attempt",
            "data",
        ]
        read_only_fields = fields


class JobTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    queue = serializers.CharField()
    max_retries = serializers.IntegerField()
    time_limit = serializers.IntegerField()
    accepts_file = serializers.BooleanField()
    params_schema = serializers.DictField()
    example = serializers.DictField()


class JobPageSerializer(serializers.Serializer):
    """A cursor page of jobs, without their params and results."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = JobSummarySerializer(many=True)


class JobEventPageSerializer(serializers.Serializer):
    """A cursor page of events, oldest first."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = JobEventSerializer(many=True)
