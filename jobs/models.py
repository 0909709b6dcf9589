"""The Job row (the truth about every job), its event log, batches of jobs, API keys,
and webhook secrets and deliveries."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The longest Idempotency-Key a client may send (the column's width; the API says so).
IDEMPOTENCY_KEY_MAX = 255

TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

# Other job APIs' words for our statuses, accepted wherever a client sends a status
# (KnowledgeSDK and DocuRift say ``processing``). Responses always say ours.
STATUS_SYNONYMS = {"processing": JobStatus.RUNNING.value}


def status_from_client(value: str) -> str | None:
    """Our status for what a client sent (a synonym is translated), or None if unknown."""
    value = STATUS_SYNONYMS.get(value, value)
    return value if value in JobStatus.values else None


class Batch(models.Model):
    """Jobs created together in one request: counted, cancelled and told of as one.

    The jobs are the truth (a batch's counts are read from them); the batch row holds what
    the request gave (callback, Idempotency-Key) and ``completed_at``, set once by whoever
    sees its last job end, which is what its ``batch.completed`` delivery tells of.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches", db_index=False
    )
    label = models.CharField(max_length=200, blank=True, default="")
    total = models.PositiveIntegerField(default=0)
    callback_url = models.URLField(max_length=2000, blank=True, default="")
    # NULL, not "": batches without a key must not collide in the unique constraint.
    idempotency_key = models.CharField(  # noqa: DJ001
        max_length=IDEMPOTENCY_KEY_MAX, null=True, blank=True
    )
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # When its last job ended; NULL while any runs (and again after one is restarted).
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="batch_owner_created"),
            # The sweeper's question: open batches whose last job's end went unnoticed.
            models.Index(
                fields=["created_at"],
                condition=models.Q(completed_at__isnull=True),
                name="batch_open",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="batch_unique_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.id} ({self.total} jobs)"


class Job(models.Model):
    """One unit of background work. Workers, API and admin all read and write this row;
    every status change goes through ``jobs.services`` as a conditional UPDATE."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    progress = models.FloatField(default=0.0)
    current_step = models.CharField(max_length=255, blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    # Where a job that works in steps got to (``progress.checkpoint``), written in the same
    # transaction as the step: a retried or restarted job continues from it, never redoing
    # a step. Kept across restarts; only the pipeline that wrote it reads it.
    checkpoint = models.JSONField(null=True, blank=True)
    # The error clients see: a machine-readable code and a clear message.
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # For operators only (admin); never sent through the API.
    error_traceback = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=3)
    # Attempts made before the last restart: each run gets max_retries of its own.
    retry_base = models.PositiveIntegerField(default=0)
    # 0 (lowest) to 9 (most urgent).
    priority = models.PositiveSmallIntegerField(default=5)
    queue = models.CharField(max_length=32, default="default")
    time_limit = models.PositiveIntegerField(default=600, help_text="Seconds per attempt.")
    # No index of its own: the owner-led indexes below serve every lookup by owner, and
    # each index costs a write on every status change.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="jobs",
        db_index=False,
    )
    # NULL, not "": jobs without a key must not collide in the unique constraint.
    idempotency_key = models.CharField(  # noqa: DJ001
        max_length=IDEMPOTENCY_KEY_MAX, null=True, blank=True
    )
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    callback_url = models.URLField(max_length=2000, blank=True, default="")
    # Indexed by job_batch_status (partial: only jobs that are in a batch).
    batch = models.ForeignKey(
        Batch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_index=False,
    )
    input_file = models.FileField(upload_to="uploads/%Y/%m/%d/", blank=True, default="")
    celery_task_id = models.CharField(max_length=64, blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the current attempt was claimed: past its time limit it is overdue.
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    # When a message for this job was last published (or is due, for a countdown).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The API list and its filters, always scoped to one owner.
            models.Index(fields=["owner", "-created_at"], name="job_owner_created"),
            models.Index(fields=["owner", "status", "-created_at"], name="job_owner_status"),
            models.Index(fields=["owner", "type", "-created_at"], name="job_owner_type"),
            # The admin's list of every job, newest first.
            models.Index(fields=["-created_at", "-id"], name="job_created"),
            # The sweeper's questions, each about one status. Partial indexes: a row is in
            # at most one of them, so a status change writes 6 index entries instead of
            # 10, and heartbeats (no indexed column) are HOT updates.
            models.Index(
                fields=["queue", "created_at"],
                condition=models.Q(status="pending"),
                name="job_pending",
            ),
            models.Index(
                fields=["run_at"], condition=models.Q(status="scheduled"), name="job_scheduled"
            ),
            models.Index(
                fields=["next_retry_at"],
                condition=models.Q(status="retrying"),
                name="job_retrying",
            ),
            models.Index(
                fields=["attempt_started_at"],
                condition=models.Q(status="running"),
                name="job_running",
            ),
            models.Index(
                fields=["completed_at"],
                condition=models.Q(status__in=["completed", "failed", "cancelled"]),
                name="job_finished",
            ),
            # Finished jobs that have a callback: the sweeper makes sure each was told.
            models.Index(
                fields=["completed_at"],
                condition=models.Q(status__in=["completed", "failed", "cancelled"])
                & ~models.Q(callback_url=""),
                name="job_finished_callback",
            ),
            # A batch's counts by status, and its jobs still to end.
            models.Index(
                fields=["batch", "status"],
                condition=models.Q(batch__isnull=False),
                name="job_batch_status",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="job_unique_idempotency_key",
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0) & models.Q(progress__lte=100),
                name="job_progress_0_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def attempts_left(self) -> int:
        """Attempts this run may still start (the first try plus max_retries)."""
        return max(0, self.max_retries + 1 - (self.attempts - self.retry_base))

    @property
    def duration(self) -> float | None:
        """Seconds from the first start to the end (or to now while it runs)."""
        if not self.started_at:
            return None
        end = self.completed_at or timezone.now()
        return round((end - self.started_at).total_seconds(), 3)


class JobArchive(models.Model):
    """What stays of a job once the purge deletes its record (its events, upload and
    webhook deliveries go with it): who asked for what, how it ended, and what it
    produced. ``GET /jobs/{id}`` answers with it, marked archived, for the job's owner.
    Kept for ``JOBSITE_JOB_ARCHIVE_DAYS`` (0: for good)."""

    id = models.UUIDField(primary_key=True, help_text="The job's id.")
    type = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices)
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["owner", "-completed_at"], name="jobarchive_owner"),
            models.Index(fields=["archived_at"], name="jobarchive_archived"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status}, archived)"


class JobEvent(models.Model):
    """Append-only: every transition and notable step, who caused it and why."""

    class Kind(models.TextChoices):
        TRANSITION = "transition"
        CANCEL_REQUESTED = "cancel_requested"
        NOTE = "note"

    # Indexed by jobevent_job_id (job, id), which also serves lookups by job alone.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events", db_index=False)
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TRANSITION)
    from_status = models.CharField(max_length=16, blank=True, default="")
    to_status = models.CharField(max_length=16, blank=True, default="")
    # "api_key:<prefix>", "user:<username>", or "system:<component>".
    actor = models.CharField(max_length=200)
    reason = models.TextField(blank=True, default="")
    attempt = models.PositiveIntegerField(default=0)
    data = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["job", "id"], name="jobevent_job_id")]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.from_status}→{self.to_status} by {self.actor}"


class ApiKey(models.Model):
    """A user's API key. Only a SHA-256 hash of the key is stored; the key is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"jsk_{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class WebhookSecret(models.Model):
    """An owner's signing secret for webhook deliveries (Standard Webhooks: ``whsec_`` and
    base64). After a rotation the previous secret signs too, until ``previous_until``, so
    a receiver can switch without rejecting a delivery."""

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_secret"
    )
    secret = models.CharField(max_length=100)
    previous = models.CharField(max_length=100, blank=True, default="")
    previous_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"webhook secret of {self.owner}"


class Delivery(models.Model):
    """One webhook message: a job reached a terminal state, or a batch's last job did,
    and its callback is told.

    ``message_id`` is the ``webhook-id`` every retry of this message carries, so a receiver
    can deduplicate. Retries are scheduled here (``next_attempt_at``), not in the broker.
    """

    class Status(models.TextChoices):
        PENDING = "pending"  # due at next_attempt_at
        SENDING = "sending"  # an attempt holds it until lease_until
        DELIVERED = "delivered"
        FAILED = "failed"  # retries ran out
        DISABLED = "disabled"  # the receiver answered 410 Gone

    # One of the two: the job, or the batch, this message tells of.
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    # The end this message tells of: a restarted job (or a batch) ends again, anew.
    job_completed_at = models.DateTimeField()
    message_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=32)
    url = models.URLField(max_length=2000)
    # The signed JSON, fixed by the first attempt: every retry sends the same bytes.
    body = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Retries stop here (JOBSITE_WEBHOOK_RETRY_WINDOW after the job ended, or a redelivery).
    give_up_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    # When a message for the next attempt was last handed to the broker.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "job_completed_at"], name="delivery_once"),
            models.UniqueConstraint(
                fields=["batch", "job_completed_at"],
                condition=models.Q(batch__isnull=False),
                name="delivery_batch_once",
            ),
            models.CheckConstraint(
                condition=models.Q(job__isnull=True) ^ models.Q(batch__isnull=True),
                name="delivery_job_or_batch",
            ),
        ]
        indexes = [
            # The sweeper's questions: what is due, what was left sending.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="delivery_due",
            ),
            models.Index(
                fields=["lease_until"], condition=models.Q(status="sending"), name="delivery_leased"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} of {self.job_id or self.batch_id} to {self.url} ({self.status})"


class DeliveryAttempt(models.Model):
    """One POST of a delivery and what came back: kept for the client and the operator."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts_made")
    attempt = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"attempt {self.attempt} of delivery {self.delivery_id}: {self.status_code}"


class TallyFigures(models.Model):
    """What the metrics count, summed over a group of events (``jobs.tally``).

    The counts are read from the event log, not kept by the processes that cause them, so
    any web process answers ``/metrics`` for the whole cluster and nothing is lost when one
    restarts; they outlive the purge of the events they were counted from."""

    # The job type ("" for webhook attempts).
    type = models.CharField(max_length=200)
    # created, started, retried, restarted, completed, failed, cancelled, webhook_<outcome>.
    event = models.CharField(max_length=32)
    count = models.BigIntegerField(default=0)
    # Finished jobs that had started (the duration histogram's count) and their durations'
    # sum; how many took at most each bound of DURATION_BUCKETS are the columns le00, le01...
    # (added below): columns, so a tally run adds to them in SQL, in one statement.
    timed = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0.0)
    # Pipeline throughput of completed jobs: document pages, seconds of media.
    pages = models.BigIntegerField(default=0)
    media_seconds = models.FloatField(default=0.0)

    class Meta:
        abstract = True


# Upper bounds (seconds) of the job duration histogram's buckets, from an echo job's
# milliseconds to an hour of media. A change needs a migration (a column per bound).
DURATION_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip
BUCKET_COLUMNS = tuple(f"le{i:02d}" for i in range(len(DURATION_BUCKETS)))
for _column, _bound in zip(BUCKET_COLUMNS, DURATION_BUCKETS, strict=True):
    TallyFigures.add_to_class(
        _column, models.BigIntegerField(default=0, help_text=f"at most {_bound} s")
    )


class TallyMinute(TallyFigures):
    """The figures per minute the events happened in: the operators' dashboard charts
    them. Kept ``JOBSITE_METRICS_MINUTES_DAYS``."""

    minute = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["minute", "type", "event"], name="tallyminute_key")
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.type} {self.event}: {self.count}"


class TallyTotal(TallyFigures):
    """The figures since the platform began counting: Prometheus's counters."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["type", "event"], name="tallytotal_key")]

    def __str__(self) -> str:
        return f"{self.type} {self.event}: {self.count}"


class TallyCursor(models.Model):
    """How far the tally has read one append-only table (by id), and the next id it may
    read up to (``horizon_id``, the highest id seen at ``horizon_at``)."""

    source = models.CharField(max_length=32, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    horizon_id = models.BigIntegerField(default=0)
    horizon_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.source} tallied up to {self.last_id}"
