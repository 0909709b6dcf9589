"""The tally: counts read from the event log, exact on the fly and after a run, never
counted twice, and the horizon that keeps a late commit from being skipped."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from jobs import publish, services, tally
from jobs.models import DeliveryAttempt, Job, JobEvent, JobStatus, TallyCursor, TallyMinute

pytestmark = pytest.mark.django_db


def create(user, job_type: str = "echo", **fields) -> Job:
    with mock.patch.object(publish, "publish_job"):
        job, _ = services.job_create(owner=user, job_type=job_type, params={}, actor="test")
    if fields:
        Job.objects.filter(pk=job.pk).update(**fields)
    return job


def finish(job: Job, *, result=None, seconds: float = 0.0) -> None:
    claimed = services.job_claim(job.pk, task_id=f"t-{job.pk}", worker="w:1")
    assert claimed is not None
    if seconds:  # as if it had started that long ago
        Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=seconds))
    assert services.job_complete(
        job.pk, task_id=f"t-{job.pk}", attempt=claimed.attempts, result=result or {}
    )


def counts(snap: tally.Snapshot) -> dict[tuple[str, str], int]:
    return {key: figures.count for key, figures in snap.totals.items() if figures.count}


def ripen() -> None:
    """Let the horizons taken so far be read (as if the lag had passed)."""
    TallyCursor.objects.update(horizon_at=timezone.now() - timedelta(hours=1))


def roll_all() -> None:
    tally.roll_up()  # takes the horizons
    ripen()
    tally.roll_up()  # reads up to them


def test_a_snapshot_counts_events_not_yet_tallied(user):
    done = create(user)
    finish(done, seconds=3)
    create(user)
    cancelled = create(user)
    services.job_cancel(cancelled, actor="test")
    snap = tally.snapshot()
    assert counts(snap) == {
        ("echo", "created"): 3,
        ("echo", "started"): 1,
        ("echo", "completed"): 1,
        ("echo", "cancelled"): 1,
    }
    assert snap.backlog == 0
    timed = snap.totals[("echo", "completed")]
    assert timed.timed == 1 and 2.9 < timed.seconds < 4
    bounds = dict(zip(tally.DURATION_BUCKETS, timed.buckets, strict=True))
    assert bounds[2.5] == 0 and bounds[5] == 1 and bounds[3600] == 1
    # A job cancelled before it started is counted, but has no duration.
    assert snap.totals[("echo", "cancelled")].timed == 0


def test_rolled_up_counts_equal_the_on_the_fly_ones_and_are_never_counted_twice(user):
    for _ in range(3):
        finish(create(user))
    before = counts(tally.snapshot())
    tally.roll_up()  # the first run only takes a horizon
    assert TallyCursor.objects.get(source="job_events").last_id == 0
    assert tally.roll_up() == 0  # the lag has not passed
    ripen()
    assert tally.roll_up() > 0
    assert TallyCursor.objects.get(source="job_events").last_id == JobEvent.objects.latest("id").id
    assert counts(tally.snapshot()) == before
    roll_all()
    assert counts(tally.snapshot()) == before  # nothing new: nothing added
    finish(create(user))
    after = counts(tally.snapshot())
    assert after[("echo", "completed")] == 4 and after[("echo", "created")] == 4
    roll_all()
    assert counts(tally.snapshot()) == after
    minutes = TallyMinute.objects.filter(type="echo", event="completed")
    assert sum(row.count for row in minutes) == 4


def test_the_horizon_holds_back_ids_seen_after_it_was_taken(user):
    finish(create(user))
    tally.roll_up()
    horizon = TallyCursor.objects.get(source="job_events").horizon_id
    finish(create(user))  # ids past the horizon, as a late commit would be
    ripen()
    tally.roll_up()
    cursor = TallyCursor.objects.get(source="job_events")
    assert cursor.last_id == horizon < JobEvent.objects.latest("id").id
    # They are counted on the fly meanwhile, and by the next run once they are old enough.
    assert counts(tally.snapshot())[("echo", "completed")] == 2
    ripen()
    tally.roll_up()
    assert TallyCursor.objects.get(source="job_events").last_id == JobEvent.objects.latest("id").id


def test_a_run_that_lost_the_race_adds_nothing(user):
    finish(create(user))
    tally.roll_up()
    ripen()
    cursor = TallyCursor.objects.get(source="job_events")
    # Another run moved the cursor after this one read it.
    TallyCursor.objects.filter(source="job_events").update(last_id=cursor.horizon_id)
    source = tally.SOURCES[0]
    assert not tally._add(source, cursor.last_id, cursor.horizon_id)
    assert not TallyMinute.objects.exists()


def test_a_backlog_is_read_in_chunks_and_reported_until_read(user, settings):
    settings.JOBSITE_METRICS_TAIL_MAX = 5
    for _ in range(4):
        finish(create(user))
    snap = tally.snapshot()
    assert snap.backlog > 5 and not counts(snap)  # too long to read on the fly
    # Several runs, as beat makes them (in the PostgreSQL suite, ids start where earlier
    # tests left the sequence, and the session's beat may have taken the horizon first).
    for _ in range(20):
        tally.roll_up(chunk=3)
        ripen()
        if tally.snapshot().backlog == 0:
            break
    assert tally.snapshot().backlog == 0
    assert counts(tally.snapshot())[("echo", "completed")] == 4


def test_retries_failures_and_restarts_are_counted_apart(user):
    job = create(user, max_retries=1)
    for task_id in ("a", "b"):  # the first attempt is retried, the second fails for good
        services.job_claim(job.pk, task_id=task_id, worker="w:1")
        assert services.job_attempt_failed(job.pk, task_id=task_id, exc=ValueError("boom"))
        Job.objects.filter(pk=job.pk).update(next_retry_at=None)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    services.job_restart(job, actor="test")
    assert counts(tally.snapshot()) == {
        ("echo", "created"): 1,
        ("echo", "started"): 2,
        ("echo", "retried"): 1,
        ("echo", "failed"): 1,
        ("echo", "restarted"): 1,
    }


def test_pipeline_throughput_is_read_from_the_results_of_its_job_types(user):
    finish(create(user, job_type="echo"), result={"pages": 99})  # not a document job
    doc = create(user, job_type="echo")
    Job.objects.filter(pk=doc.pk).update(type="document_processing")
    finish(doc, result={"pages": 7})
    media = create(user, job_type="echo")
    Job.objects.filter(pk=media.pk).update(type="media_analysis")
    finish(media, result={"duration_s": 31.5})
    snap = tally.snapshot()
    assert snap.totals[("document_processing", "completed")].pages == 7
    assert snap.totals[("media_analysis", "completed")].media_seconds == 31.5
    assert snap.totals[("echo", "completed")].pages == 0


def test_webhook_attempts_are_counted_by_outcome(user):
    from jobs.models import Delivery

    job = create(user)
    now = timezone.now()
    delivery = Delivery.objects.create(
        job=job,
        job_completed_at=now,
        message_id="msg_1",
        event_type="job.completed",
        url="https://hooks.example.com/",
        give_up_at=now,
    )
    for attempt, code, retry in ((1, 500, True), (2, None, True), (3, 200, False), (4, 404, False)):
        DeliveryAttempt.objects.create(
            delivery=delivery,
            attempt=attempt,
            status_code=code,
            next_attempt_at=now if retry else None,
        )
    snap = tally.snapshot()
    assert snap.totals[("", "webhook_retry")].count == 2
    assert snap.totals[("", "webhook_delivered")].count == 1
    assert snap.totals[("", "webhook_gave_up")].count == 1
    roll_all()
    assert tally.snapshot().totals[("", "webhook_retry")].count == 2
