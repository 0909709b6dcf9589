"""Webhook deliveries: one message per end of a job (or of a batch), sent until the
receiver takes it.

The row is the truth, as for jobs. It is written when the job ends (in the same
transaction as the change, where the change has one) and its message is published after
commit. The body is built and fixed by the first attempt, in the webhooks worker: what a
receiver reads is the job as it stood then (its end, unless it was restarted meanwhile).
A lost message, a killed worker or a crash between the job's end and the row is repaired
by the sweeper from the rows (``publish_due``, ``recover_leases``, ``create_missing``).
Retries wait in the database (``next_attempt_at``), never as broker countdowns, and stop
at ``give_up_at``.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from jobs import outbound, publish
from jobs.models import TERMINAL_STATUSES, Batch, Delivery, DeliveryAttempt, Job, JobStatus
from jobs.services.failures import retry_delay
from jobs.webhooks import signing
from jobsite import logs

log = logging.getLogger(__name__)

EVENT_TYPES = {
    JobStatus.COMPLETED: "job.completed",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELLED: "job.cancelled",
}
BATCH_COMPLETED = "batch.completed"
BATCH = 500
# How far back the sweeper looks for ended jobs whose delivery was never written.
MISSING_LOOKBACK = timedelta(hours=1)


def payload(job: Job, event_type: str) -> dict[str, Any]:
    """The message: the event, ``jobId`` (KnowledgeSDK tells receivers to deduplicate on
    it), the status, result and error at the top as KnowledgeSDK's receivers read them,
    and the whole job as the status endpoint shows it."""
    # On use: the services import this module, and must load without the REST layer.
    from jobs.api.serializers import JobSerializer

    data = JobSerializer(job).data
    return {
        "type": event_type,
        "timestamp": data["completed_at"],
        "jobId": data["job_id"],
        "status": data["status"],
        "result": data["result"],
        "error": data["error"],
        "data": data,
    }


def batch_payload(batch: Batch) -> dict[str, Any]:
    """A batch's message: the event, ``batchId``, and the batch as its status endpoint
    shows it (counts by status, progress)."""
    from jobs.api.batches import batch_data  # on use, as above

    data = batch_data(batch)
    return {
        "type": BATCH_COMPLETED,
        "timestamp": data["completed_at"],
        "batchId": data["batch_id"],
        "status": data["status"],
        "data": data,
    }


def on_end(job: Job, to_status: str) -> str | None:
    """A job with a callback URL ended: write its message's row (once per end) and publish
    it after commit; returns the message id. ``job`` carries at least its callback URL,
    owner and ``completed_at``.

    One INSERT (``ON CONFLICT DO NOTHING``: a second writer of this end loses quietly, and
    the message it publishes finds no row of its own) and one publish: this runs in the
    job's worker as the job ends, so the body is built by the webhooks worker instead.
    """
    if not job.callback_url or job.owner_id is None or job.completed_at is None:
        return None
    return _written(
        job_id=job.pk,
        ended_at=job.completed_at,
        event_type=EVENT_TYPES[to_status],
        url=job.callback_url,
    )


def on_batch_end(batch: Batch) -> str | None:
    """A batch's last job ended: its ``batch.completed`` message, as ``on_end`` writes a
    job's (in the closing transaction, published after it commits)."""
    if not batch.callback_url or batch.completed_at is None:
        return None
    return _written(
        batch_id=batch.pk,
        ended_at=batch.completed_at,
        event_type=BATCH_COMPLETED,
        url=batch.callback_url,
    )


def _written(*, ended_at: Any, event_type: str, url: str, **subject: Any) -> str:
    """The message's row (one INSERT, ``ON CONFLICT DO NOTHING``: a second writer of this
    end loses quietly) and its publish after commit; the message id."""
    now = timezone.now()
    message_id = f"msg_{uuid.uuid4().hex}"
    Delivery.objects.bulk_create(
        [
            Delivery(
                **subject,
                job_completed_at=ended_at,
                message_id=message_id,
                event_type=event_type,
                url=url,
                next_attempt_at=now,
                give_up_at=ended_at + timedelta(seconds=settings.JOBSITE_WEBHOOK_RETRY_WINDOW),
                dispatched_at=now,
            )
        ],
        ignore_conflicts=True,
    )
    publish.send_on_commit(
        partial(publish.publish_delivery, message_id), what=f"delivery {message_id}"
    )
    return message_id


def delay(attempt: int) -> float:
    """Seconds before the next try: exponential with equal jitter, the first within ~10 s."""
    return retry_delay(
        attempt,
        base=settings.JOBSITE_WEBHOOK_BACKOFF_BASE,
        cap=settings.JOBSITE_WEBHOOK_BACKOFF_MAX,
    )


def deliver(message_id: str) -> str:
    """One attempt, if the message is due and no one else holds it; returns its status."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.JOBSITE_WEBHOOK_TIMEOUT + 30)
    claimed = Delivery.objects.filter(
        message_id=message_id,
        status=Delivery.Status.PENDING,
        next_attempt_at__lte=now + timedelta(seconds=0.5),
    ).update(
        status=Delivery.Status.SENDING,
        lease_until=lease,
        attempts=F("attempts") + 1,
        next_attempt_at=None,
    )
    if not claimed:
        return "skipped"
    delivery = Delivery.objects.select_related("job", "batch").get(message_id=message_id)
    with logs.job_context(delivery.job):  # a batch's message names no job
        return _send(delivery)


def _send(delivery: Delivery) -> str:
    """Build the body on the first attempt, sign it, POST it, and record the answer."""
    subject = delivery.job or delivery.batch
    if not delivery.body:  # the first attempt fixes the body: every retry sends these bytes
        if delivery.batch is not None:
            body = batch_payload(delivery.batch)
        else:
            body = payload(delivery.job, delivery.event_type)
        delivery.body = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        Delivery.objects.filter(pk=delivery.pk).update(body=delivery.body)
    at = timezone.now()
    secret = signing.secret_for(subject.owner_id)
    headers = signing.headers(secret, delivery.message_id, at, delivery.body)
    code, excerpt, error, elapsed = None, "", "", 0.0
    try:
        answer = outbound.post(
            delivery.url,
            content=delivery.body.encode(),
            headers=headers,
            timeout=settings.JOBSITE_WEBHOOK_TIMEOUT,
            allow_hosts=outbound.allowed_hosts_from_settings(),
        )
        code, excerpt, elapsed = answer.status, answer.excerpt, answer.elapsed
    except outbound.FetchError as exc:
        error = exc.message
        elapsed = (timezone.now() - at).total_seconds()
    return _record(delivery, code, excerpt, error, elapsed)


def _record(delivery: Delivery, code: int | None, excerpt: str, error: str, elapsed: float) -> str:
    """What this attempt leaves: the attempt row, and the delivery done, disabled, failed,
    or due again later."""
    now = timezone.now()
    values: dict[str, Any] = {"lease_until": None}
    next_at = None
    if code is not None and 200 <= code < 300:
        values.update(status=Delivery.Status.DELIVERED, finished_at=now)
    elif code == 410:  # the receiver says this callback is gone for good
        values.update(status=Delivery.Status.DISABLED, finished_at=now)
    else:
        next_at = now + timedelta(seconds=delay(delivery.attempts))
        if next_at > delivery.give_up_at:
            next_at = None
            values.update(status=Delivery.Status.FAILED, finished_at=now)
        else:
            values.update(
                status=Delivery.Status.PENDING, next_attempt_at=next_at, dispatched_at=None
            )
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            attempt=delivery.attempts,
            at=now,
            status_code=code,
            response_excerpt=excerpt,
            error=error,
            duration_ms=round(elapsed * 1000),
            next_attempt_at=next_at,
        )
        # Only this attempt's own lease: a redelivery meanwhile is not undone.
        Delivery.objects.filter(
            pk=delivery.pk, status=Delivery.Status.SENDING, attempts=delivery.attempts
        ).update(**values)
    log.info("delivery %s attempt %s: %s", delivery.pk, delivery.attempts, code or error)
    return values["status"]


def redeliver(delivery: Delivery) -> bool:
    """An operator's "send it again": due now, with a fresh retry window; the message
    keeps its ``webhook-id``, so a receiver that already has it can tell."""
    now = timezone.now()
    moved = (
        Delivery.objects.filter(pk=delivery.pk)
        .exclude(status=Delivery.Status.SENDING)
        .update(
            status=Delivery.Status.PENDING,
            next_attempt_at=now,
            give_up_at=now + timedelta(seconds=settings.JOBSITE_WEBHOOK_RETRY_WINDOW),
            finished_at=None,
            dispatched_at=now,
        )
    )
    if moved:
        publish.send_on_commit(
            partial(publish.publish_delivery, delivery.message_id),
            what=f"delivery {delivery.message_id}",
        )
    return bool(moved)


# --- the sweeper's share -------------------------------------------------------------------


def publish_due() -> int:
    """Deliveries due whose message is not (or no longer) on its way: retries, and first
    tries whose publish was lost."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOBSITE_DISPATCH_AFTER)
    due = Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now).filter(
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale)
    )
    count = 0
    for delivery in due.order_by("next_attempt_at")[:BATCH]:
        marked = Delivery.objects.filter(
            pk=delivery.pk, status=Delivery.Status.PENDING, dispatched_at=delivery.dispatched_at
        ).update(dispatched_at=now)
        if marked and publish.publish_delivery(delivery.message_id):
            count += 1
    return count


def recover_leases() -> int:
    """Attempts whose worker died mid-send: due again now (the attempt counted)."""
    return Delivery.objects.filter(
        status=Delivery.Status.SENDING, lease_until__lt=timezone.now()
    ).update(status=Delivery.Status.PENDING, next_attempt_at=timezone.now(), dispatched_at=None)


def create_missing() -> int:
    """Ended jobs with a callback whose delivery was never written (a crash between the
    status change and the delivery's row): written now."""
    now = timezone.now()
    told = Delivery.objects.filter(job=OuterRef("pk"), job_completed_at=OuterRef("completed_at"))
    untold = (
        Job.objects.filter(
            status__in=TERMINAL_STATUSES,
            completed_at__gte=now - MISSING_LOOKBACK,
            completed_at__lte=now - timedelta(seconds=5),  # not one its writer is finishing
        )
        .exclude(callback_url="")
        .filter(~Exists(told))
        .only("pk", "status", "callback_url", "owner_id", "completed_at")
    )
    return sum(on_end(job, job.status) is not None for job in untold[:BATCH])
